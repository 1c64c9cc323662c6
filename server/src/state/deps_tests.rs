//! Dependencies in the state alone: chains, diamonds, failures that cascade, ends already in
//! the history (purged or not), all-or-none batches, and waiting tasks carried over a restart.

use std::sync::Arc;
use tonic::Code;
use warren_proto::v1::{
    EngineMessage, ExecuteRequest, TaskFinished, TaskResult, TaskState, engine_message,
};

use crate::model::Submitter;
use crate::state::testing::{TestEngine, assert_decided, decided, hub, job};
use crate::state::{Clock, Hub, Settings};
use crate::store::{Location, Store};

fn after(ids: &[u64], ok: bool) -> ExecuteRequest {
    let mut request = job(&[], 0);
    if ok {
        request.after_ok = ids.to_vec();
    } else {
        request.after = ids.to_vec();
    }
    request
}

async fn submit(hub: &Hub, request: ExecuteRequest) -> u64 {
    let ids = hub
        .submit_batch(vec![request], Submitter::default(), false)
        .await
        .expect("submit");
    ids[0][0]
}

/// The engine says the task (attempt 1) ended in `state`.
fn end(hub: &Hub, engine: &TestEngine, task_id: u64, state: TaskState) {
    let message = EngineMessage {
        kind: Some(engine_message::Kind::Finished(TaskFinished {
            task_id,
            attempt: 1,
            chunks: 0,
            result: Some(TaskResult {
                state: state as i32,
                ..Default::default()
            }),
        })),
    };
    hub.engine_message(engine.id, engine.connection, message, 0);
}

/// Checks that a task ended in `state` saying `why` (from memory or, once it left, the history).
async fn assert_ended(hub: &Hub, id: u64, state: TaskState, why: &str) {
    hub.wait_until_ended(id).await;
    let info = hub.get_task(id).await.expect("task");
    assert_eq!(info.state(), state, "{}", info.reason);
    assert!(
        info.reason.contains(why),
        "{:?} does not say {why:?}",
        info.reason
    );
}

fn state_of(hub: &Hub, id: u64) -> TaskState {
    decided(hub, id).expect("in memory").0
}

#[tokio::test]
async fn a_chain_runs_in_order() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 4, &[]);
    let a = submit(&hub, job(&[], 0)).await;
    let b = submit(&hub, after(&[a], true)).await;
    let c = submit(&hub, after(&[b], true)).await;
    assert_eq!(engine.assigned(), vec![a], "only the head starts");
    assert_decided(
        &hub,
        b,
        TaskState::Waiting,
        &format!("waiting for task {a} to succeed"),
    );
    assert_decided(&hub, c, TaskState::Waiting, &format!("task {b}"));
    assert_eq!(
        hub.queue_status().unassigned,
        0,
        "waiting tasks are in no queue"
    );

    end(&hub, &engine, a, TaskState::Succeeded);
    assert_eq!(engine.assigned(), vec![b]);
    assert_eq!(state_of(&hub, c), TaskState::Waiting);
    end(&hub, &engine, b, TaskState::Succeeded);
    assert_eq!(engine.assigned(), vec![c]);
}

#[tokio::test]
async fn a_failure_in_the_middle_aborts_what_needed_it_and_what_needed_that() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 4, &[]);
    let a = submit(&hub, job(&[], 0)).await;
    let b = submit(&hub, after(&[a], true)).await;
    let c = submit(&hub, after(&[b], true)).await;
    let any_end = submit(&hub, after(&[b], false)).await;
    assert_eq!(engine.assigned(), vec![a]);
    end(&hub, &engine, a, TaskState::Failed);
    assert_ended(
        &hub,
        b,
        TaskState::Aborted,
        &format!("task {a} ended failed"),
    )
    .await;
    assert_ended(
        &hub,
        c,
        TaskState::Aborted,
        &format!("task {b} ended aborted"),
    )
    .await;
    // `after` is met by any end, an abort included.
    assert_eq!(engine.assigned(), vec![any_end]);
}

#[tokio::test]
async fn a_diamond_joins_once_both_sides_succeed() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 4, &[]);
    let top = submit(&hub, job(&[], 0)).await;
    let left = submit(&hub, after(&[top], true)).await;
    let right = submit(&hub, after(&[top], true)).await;
    let bottom = submit(&hub, after(&[left, right], true)).await;
    assert_eq!(engine.assigned(), vec![top]);
    end(&hub, &engine, top, TaskState::Succeeded);
    assert_eq!(engine.assigned(), vec![left, right]);
    end(&hub, &engine, left, TaskState::Succeeded);
    assert_decided(&hub, bottom, TaskState::Waiting, "tasks");
    assert!(engine.assigned().is_empty());
    end(&hub, &engine, right, TaskState::Succeeded);
    assert_eq!(engine.assigned(), vec![bottom]);
}

#[tokio::test]
async fn aborting_a_waiting_task_lets_its_dependents_follow() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let head = submit(&hub, job(&[], 0)).await;
    let held = submit(&hub, after(&[head], false)).await;
    let needs_it = submit(&hub, after(&[held], true)).await;
    let reply = hub
        .abort(&[held], Submitter::default())
        .await
        .expect("abort");
    assert_eq!(reply.aborted, vec![held]);
    assert_ended(&hub, needs_it, TaskState::Aborted, &format!("task {held}")).await;
    // The head's end no longer concerns the aborted task.
    assert_eq!(engine.assigned(), vec![head]);
    end(&hub, &engine, head, TaskState::Succeeded);
    assert!(engine.assigned().is_empty());
}

#[tokio::test]
async fn dependencies_are_checked_at_submission() {
    let (hub, _clock) = hub(Settings::small("test"));
    let engine = TestEngine::register(&hub, "e", 1, &[]);
    let unknown = hub
        .submit_batch(vec![after(&[99], true)], Submitter::default(), false)
        .await
        .expect_err("no task 99");
    assert_eq!(tonic::Status::from(unknown).code(), Code::NotFound);

    // Ended already: a success meets after_ok, a failure aborts at once.
    let good = submit(&hub, job(&[], 0)).await;
    end(&hub, &engine, good, TaskState::Succeeded);
    let bad = submit(&hub, job(&[], 0)).await;
    end(&hub, &engine, bad, TaskState::Failed);
    hub.store.settled().await.expect("settled");
    let runs = submit(&hub, after(&[good], true)).await;
    assert_eq!(state_of(&hub, runs), TaskState::Queued);
    let doomed = submit(&hub, after(&[bad], true)).await;
    assert_ended(
        &hub,
        doomed,
        TaskState::Aborted,
        &format!("task {bad} ended failed"),
    )
    .await;
}

/// A task that succeeded and one that failed, on an engine of their own.
async fn one_good_one_bad(hub: &Hub) -> (u64, u64) {
    let mut engine = TestEngine::register(hub, "e", 1, &[]);
    let good = submit(hub, job(&[], 0)).await;
    assert_eq!(engine.assigned(), vec![good]);
    end(hub, &engine, good, TaskState::Succeeded);
    let bad = submit(hub, job(&[], 0)).await;
    assert_eq!(engine.assigned(), vec![bad]);
    end(hub, &engine, bad, TaskState::Failed);
    (good, bad)
}

/// Waits (bounded) until the task has left the hub's memory.
async fn until_gone(hub: &Hub, id: u64) {
    for _ in 0..500 {
        if decided(hub, id).is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("task {id} is still in memory after 5 s");
}

#[tokio::test]
async fn a_dependency_that_leaves_memory_after_the_history_was_read_needs_no_second_read() {
    use crate::state::batch::Refusal;
    use crate::store::PastTask;
    let (hub, _clock) = hub(Settings::small("test"));
    let (good, bad) = one_good_one_bad(&hub).await;
    until_gone(&hub, good).await;
    until_gone(&hub, bad).await;
    // What a read of the history said while both still ran, before they left memory.
    let past = std::collections::HashMap::from([(good, PastTask::Live), (bad, PastTask::Live)]);
    let submit_with = |request| {
        let tried =
            hub.update(|state| state.submit_all(&[request], &past, Submitter::default(), false));
        match tried {
            Ok(ids) => ids[0][0],
            Err(Refusal::Look(ids)) => panic!("the history was to be read again for {ids:?}"),
            Err(Refusal::Refused(err)) => panic!("refused: {err}"),
        }
    };
    let runs = submit_with(after(&[good], true));
    assert_eq!(state_of(&hub, runs), TaskState::Queued);
    let doomed = submit_with(after(&[bad], true));
    assert_ended(
        &hub,
        doomed,
        TaskState::Aborted,
        &format!("task {bad} ended failed"),
    )
    .await;
}

#[tokio::test]
async fn a_purged_dependency_counts_by_its_tombstone_and_a_forgotten_one_is_refused() {
    let (hub, _clock) = hub(Settings::small("test"));
    let (good, bad) = one_good_one_bad(&hub).await;
    hub.wait_until_ended(good).await;
    hub.wait_until_ended(bad).await;
    let purge = crate::store::PurgeSelector::Ids(vec![good, bad]);
    assert_eq!(hub.purge(purge).await.expect("purge").0, 2);

    let waits = submit(&hub, after(&[good], true)).await;
    assert_ne!(state_of(&hub, waits), TaskState::Waiting);
    let doomed = submit(&hub, after(&[bad], true)).await;
    assert_ended(&hub, doomed, TaskState::Aborted, "since purged").await;

    // Past the retention of tombstones, only `after` (any end) can still name it.
    hub.store
        .retain(warren_proto::now_us() + 1_000_000, 0, u64::MAX)
        .await
        .expect("retain");
    let refused = hub
        .submit_batch(vec![after(&[good], true)], Submitter::default(), false)
        .await
        .expect_err("forgotten");
    let status = tonic::Status::from(refused);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("no longer knows"), "{status:?}");
    submit(&hub, after(&[good], false)).await;
}

#[tokio::test]
async fn a_batch_is_all_or_none_and_names_the_request_refused() {
    let (hub, _clock) = hub(Settings::small("test"));
    let _engine = TestEngine::register(&hub, "e", 1, &[]);
    let mut bad = job(&[], 0);
    bad.spec = None;
    let refused = hub
        .submit_batch(vec![job(&[], 0), bad], Submitter::default(), true)
        .await
        .expect_err("request 1 has no spec");
    let status = tonic::Status::from(refused);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("request 1 of the batch"),
        "{status:?}"
    );
    let unknown = hub
        .submit_batch(
            vec![job(&[], 0), after(&[7], true)],
            Submitter::default(),
            true,
        )
        .await
        .expect_err("no task 7");
    assert_eq!(tonic::Status::from(unknown).code(), Code::NotFound);
    assert_eq!(
        hub.queue_status().tasks_in_memory,
        0,
        "nothing was submitted"
    );

    let ids = hub
        .submit_batch(vec![job(&[], 0); 3], Submitter::default(), true)
        .await
        .expect("batch");
    assert_eq!(ids, vec![vec![1], vec![2], vec![3]]);
}

#[tokio::test]
async fn waiting_tasks_count_against_the_queue_limits() {
    let mut settings = Settings::small("test");
    settings.limits.max_queued = 3;
    let (hub, _clock) = hub(settings);
    let head = submit(&hub, job(&[], 0)).await;
    submit(&hub, after(&[head], true)).await;
    submit(&hub, after(&[head], true)).await;
    let full = hub
        .submit_batch(vec![after(&[head], true)], Submitter::default(), false)
        .await
        .expect_err("three wait already");
    assert_eq!(tonic::Status::from(full).code(), Code::ResourceExhausted);
}

/// A hub on a database file, as a restarted hub finds it.
fn hub_on(location: &Location) -> Arc<Hub> {
    let (store, recovered, _commits) = Store::open(location.clone()).expect("store");
    Hub::with_clock(Settings::small("test"), store, recovered, Clock::manual())
}

#[tokio::test]
async fn waiting_tasks_and_their_dependencies_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::File(dir.path().join("db").join("hub.db"));
    let (head, chained, doomed) = {
        let hub = hub_on(&location);
        let head = submit(&hub, job(&[], 0)).await;
        let chained = submit(&hub, after(&[head], true)).await;
        let ended = submit(&hub, after(&[head], false)).await;
        hub.update(|state| {
            let task = state.tasks.get_mut(&ended).expect("task");
            let end = task.end(TaskState::Failed, "test".into());
            state.write(end);
        });
        let doomed = submit(&hub, after(&[ended], true)).await;
        hub.store.settled().await.expect("settled");
        (head, chained, doomed)
    };
    // The writer lets go of the database a moment after its store is dropped.
    let hub = {
        let mut tries = 0;
        loop {
            match Store::open(location.clone()) {
                Ok((store, recovered, _commits)) => {
                    break Hub::with_clock(Settings::small("t"), store, recovered, Clock::manual());
                }
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(err) => panic!("reopen: {err}"),
            }
        }
    };
    assert_decided(&hub, chained, TaskState::Waiting, &format!("task {head}"));
    let info = hub.get_task(chained).await.expect("info");
    assert_eq!(info.after_ok, vec![head]);
    assert_eq!(
        hub.get_task(doomed).await.expect("info").state(),
        TaskState::Aborted
    );
    let mut engine = TestEngine::register(&hub, "e", 2, &[]);
    assert_eq!(engine.assigned(), vec![head]);
    end(&hub, &engine, head, TaskState::Succeeded);
    assert_eq!(engine.assigned(), vec![chained]);
}

#[tokio::test]
async fn a_task_for_an_engine_that_left_for_good_fails_when_released() {
    let (hub, clock) = hub(Settings::small("test"));
    let mut first = TestEngine::register(&hub, "first", 1, &[]);
    let second = TestEngine::register(&hub, "second", 1, &[]);
    let head = submit(&hub, job(&[], 0)).await;
    let mut pinned = after(&[head], false);
    pinned.targets = Some(warren_proto::v1::Targets {
        selector: Some(warren_proto::v1::targets::Selector::Engines(
            warren_proto::v1::EngineIds {
                ids: vec![second.id],
            },
        )),
        ..Default::default()
    });
    let waiting = submit(&hub, pinned).await;
    assert_eq!(first.assigned(), vec![head]);
    second.leave(&hub);
    crate::state::testing::sweep_after(&hub, &clock, 3000);
    end(&hub, &first, head, TaskState::Succeeded);
    assert_ended(
        &hub,
        waiting,
        TaskState::Failed,
        "left while the task waited",
    )
    .await;
}
