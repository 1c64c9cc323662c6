//! Generated hostile input for the hub: request validation answers every `ExecuteRequest`
//! with acceptance or INVALID_ARGUMENT/RESOURCE_EXHAUSTED, and no sequence of engine
//! messages, valid or not, panics the hub.
//!
//! Cases per run: 15,000 structured requests, 5,000 requests decoded from arbitrary bytes,
//! 3,000 engine sessions of up to 24 messages, 2,000 engine messages decoded from arbitrary
//! bytes (25,000 in all).

use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use prost::Message;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Code, Status};

use super::{Hub, Settings};
use crate::error::HubError;
use crate::model::Submitter;
use crate::store::{Location, Store};
use crate::validate;
use warren_proto::v1::{
    Argv, EngineIds, EngineMessage, ExecuteRequest, Heartbeat, Hello, Targets, TaskFinished,
    TaskOutput, TaskReport, TaskResult, TaskSpec, TaskStarted, engine_message, targets,
    task_result, task_spec,
};

/// Text with the characters that matter to the checks: NUL, `=`, empty, long.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z=/ ]{0,12}",
        1 => "[a-z\u{0}=]{0,6}",
        1 => proptest::string::string_regex(&format!("[a-z]{{{max},{}}}", max + 2)).expect("regex"),
        1 => Just("k".repeat(3000)),
        1 => any::<String>(),
    ]
}

fn map(
    entries: usize,
    len: usize,
) -> impl Strategy<Value = std::collections::HashMap<String, String>> {
    prop_oneof![
        8 => hash_map(text(len), text(len), 0..4),
        1 => hash_map("[a-z]{1,8}", "[a-z]{0,4}", entries..entries + 3),
    ]
}

fn stdin() -> impl Strategy<Value = bytes::Bytes> {
    prop_oneof![
        20 => vec(any::<u8>(), 0..64).prop_map(bytes::Bytes::from),
        1 => Just(bytes::Bytes::from(vec![0u8; validate::MAX_STDIN + 1])),
    ]
}

fn spec() -> impl Strategy<Value = TaskSpec> {
    let command = prop_oneof![
        Just(None),
        vec(text(8), 0..4).prop_map(|args| Some(task_spec::Command::Argv(Argv { args }))),
        text(16).prop_map(|s| Some(task_spec::Command::Script(s))),
    ];
    let timeout = prop_oneof![
        Just(None),
        Just(Some(0)),
        any::<u64>().prop_map(Some),
        (1u64..100_000).prop_map(Some)
    ];
    (command, map(64, 8), text(8), stdin(), timeout).prop_map(
        |(command, env, cwd, stdin, timeout_ms)| TaskSpec {
            command,
            env,
            cwd,
            stdin,
            timeout_ms,
            ..TaskSpec::default()
        },
    )
}

fn request() -> impl Strategy<Value = ExecuteRequest> {
    let selector = prop_oneof![
        Just(None),
        Just(Some(targets::Selector::All(Default::default()))),
        Just(Some(targets::Selector::Any(Default::default()))),
        vec(0u32..4, 0..4).prop_map(|ids| Some(targets::Selector::Engines(EngineIds { ids }))),
    ];
    let targets = prop_oneof![
        Just(None),
        (selector, map(64, 300)).prop_map(|(selector, engine_labels)| Some(Targets {
            selector,
            engine_labels
        })),
    ];
    (
        prop::option::of(spec()),
        targets,
        map(64, 300),
        prop_oneof![0u32..12, any::<u32>()],
        vec(prop_oneof![0u64..4, any::<u64>()], 0..3),
        vec(prop_oneof![0u64..4, any::<u64>()], 0..3),
    )
        .prop_map(
            |(spec, targets, labels, retries, after, after_ok)| ExecuteRequest {
                spec,
                targets,
                labels,
                retries,
                after,
                after_ok,
            },
        )
}

fn check_verdict(verdict: Result<ExecuteRequest, HubError>) -> Result<(), TestCaseError> {
    if let Err(err) = verdict {
        let status = Status::from(err);
        prop_assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::ResourceExhausted
            ),
            "{:?}",
            status
        );
        prop_assert!(
            status.message().len() < 1024,
            "a refusal of {} bytes",
            status.message().len()
        );
    }
    Ok(())
}

/// A hub in memory with two engines, shared by the cases (each adds its own engines and tasks).
static HUB: LazyLock<Arc<Hub>> = LazyLock::new(|| {
    let (store, recovered, _commits) = Store::open(Location::Memory).expect("store");
    let hub = Hub::new(Settings::small("props"), store, recovered);
    for uuid in ["standing-1", "standing-2"] {
        let (tx, rx) = mpsc::unbounded_channel();
        std::mem::forget(rx);
        let hello = Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: uuid.into(),
            slots: 2,
            ..Hello::default()
        };
        hub.register_engine(hello, tx).expect("register");
    }
    hub
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(15_000))]

    #[test]
    fn every_request_is_accepted_or_refused_with_a_reason(request in request()) {
        check_verdict(validate::request(request.clone()))?;
        // The whole submission path: it may also not find the engines or labels named.
        if let Err(err) = HUB.submit(request, Submitter { uid: 1, pid: 7 }) {
            let status = Status::from(err);
            prop_assert!(matches!(
                status.code(),
                Code::InvalidArgument | Code::ResourceExhausted | Code::NotFound | Code::FailedPrecondition
            ), "{:?}", status);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    #[test]
    fn requests_decoded_from_arbitrary_bytes_are_accepted_or_refused(bytes in vec(any::<u8>(), 0..200)) {
        if let Ok(request) = ExecuteRequest::decode(bytes.as_slice()) {
            check_verdict(validate::request(request))?;
        }
    }
}

/// A task id: one of the case's own, or any.
fn task_id(own: u64) -> impl Strategy<Value = u64> {
    prop_oneof![3 => (0..4u64).prop_map(move |i| own + i), 1 => any::<u64>()]
}

fn engine_messages(own: u64) -> impl Strategy<Value = Vec<EngineMessage>> {
    let attempt = prop_oneof![3 => 0u32..3, 1 => any::<u32>()];
    let kind = prop_oneof![
        (task_id(own), any::<u32>(), any::<i64>(), attempt.clone()).prop_map(
            |(task_id, pid, started_us, attempt)| {
                engine_message::Kind::Started(TaskStarted {
                    task_id,
                    pid,
                    started_us,
                    attempt,
                })
            }
        ),
        (
            task_id(own),
            any::<i32>(),
            vec(any::<u8>(), 0..64),
            attempt.clone(),
            prop_oneof![0u64..5, any::<u64>()]
        )
            .prop_map(|(task_id, stream, data, attempt, chunk_seq)| {
                engine_message::Kind::Output(TaskOutput {
                    task_id,
                    stream,
                    data: data.into(),
                    attempt,
                    chunk_seq,
                })
            }),
        (
            task_id(own),
            any::<i32>(),
            text(5000),
            attempt,
            any::<u64>(),
            any::<i32>(),
            any::<bool>()
        )
            .prop_map(
                |(task_id, state, error, attempt, chunks, code, signalled)| {
                    let exit = Some(if signalled {
                        task_result::Exit::Signal(code)
                    } else {
                        task_result::Exit::ExitCode(code)
                    });
                    let result = TaskResult {
                        state,
                        exit,
                        error,
                        attempt,
                        ..TaskResult::default()
                    };
                    engine_message::Kind::Finished(TaskFinished {
                        task_id,
                        result: Some(result),
                        attempt,
                        chunks,
                    })
                }
            ),
        any::<i64>().prop_map(|time_us| engine_message::Kind::Heartbeat(Heartbeat { time_us })),
        Just(engine_message::Kind::Hello(Hello::default())),
    ];
    vec(
        prop::option::of(kind).prop_map(|kind| EngineMessage { kind }),
        0..24,
    )
}

fn hello() -> impl Strategy<Value = Hello> {
    let reports = vec(
        (0u64..50, 0u32..3, any::<bool>(), any::<u64>()).prop_map(
            |(task_id, attempt, finished, chunks)| TaskReport {
                task_id,
                attempt,
                finished,
                chunks,
            },
        ),
        0..4,
    );
    (
        text(130),
        text(260),
        any::<u32>(),
        map(64, 300),
        prop_oneof![0u32..8, any::<u32>()],
        text(70),
        reports,
        prop_oneof![Just(1u32), any::<u32>()],
    )
        .prop_map(
            |(uuid, hostname, pid, labels, slots, version, tasks, protocol_version)| Hello {
                protocol_version,
                uuid,
                hostname,
                pid,
                labels,
                slots,
                version,
                tasks,
                sessions: Vec::new(),
                ..Hello::default()
            },
        )
}

/// One engine session against the shared hub: register, take work, send whatever, leave.
fn session(hello: Hello, messages: Vec<EngineMessage>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let Ok((engine, connection)) = HUB.register_engine(hello, tx) else {
        return;
    };
    // Work pinned to it, so the case's messages name real tasks.
    let spec = TaskSpec {
        command: Some(task_spec::Command::Argv(Argv {
            args: vec!["true".into()],
        })),
        ..TaskSpec::default()
    };
    let pinned = ExecuteRequest {
        spec: Some(spec),
        targets: Some(Targets {
            selector: Some(targets::Selector::Engines(EngineIds { ids: vec![engine] })),
            ..Targets::default()
        }),
        ..ExecuteRequest::default()
    };
    let _ = HUB.submit(pinned.clone(), Submitter::default());
    let _ = HUB.submit(pinned, Submitter::default());
    for message in messages {
        HUB.engine_message(engine, connection, message, 0);
    }
    HUB.engine_gone(engine, connection, "the test case ended");
    HUB.update(|state| state.settle_overdue(Instant::now() + Duration::from_secs(3600)));
    drop(rx);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn no_engine_session_panics_the_hub(
        (hello, messages) in hello().prop_flat_map(|hello| {
            let own = HUB.view(|state| state.tasks.keys().next_back().copied()).unwrap_or(0) + 1;
            (Just(hello), engine_messages(own))
        }),
        valid in any::<bool>(),
    ) {
        let hello = if valid {
            Hello { protocol_version: warren_proto::PROTOCOL_VERSION, uuid: format!("u-{}", hello.pid), ..hello }
        } else {
            hello
        };
        session(hello, messages);
        // Still serving.
        prop_assert!(HUB.queue_status().engines.len() >= 2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn engine_messages_decoded_from_arbitrary_bytes_never_panic_the_hub(
        bytes in vec(vec(any::<u8>(), 0..64), 0..8),
    ) {
        let messages = bytes
            .iter()
            .filter_map(|b| EngineMessage::decode(b.as_slice()).ok())
            .collect();
        let hello = Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: "decoded".into(),
            slots: 1,
            ..Hello::default()
        };
        session(hello, messages);
    }
}
