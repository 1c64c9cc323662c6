//! The window, the order and the resending of streamed stdin, with engines driven by hand.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::v1::{
    ExecuteRequest, StdinAck, StdinData, TaskSpec, Tty, engine_message, hub_message,
};

use super::StdinEnd;
use crate::model::Submitter;
use crate::state::Hub;
use crate::state::Settings;
use crate::state::testing::{Inbox, TestEngine, hub, job, submit};

/// The small settings' window.
const WINDOW: usize = 64 << 10;

fn streaming(hub: &Hub, request: ExecuteRequest) -> (u64, Arc<Notify>) {
    let (ids, room) = hub
        .submit_streaming(request, Submitter::default())
        .expect("submit");
    (ids[0], room)
}

/// The stdin messages an engine was sent since last asked.
fn stdin_sent(inbox: &mut Inbox) -> Vec<StdinData> {
    let mut sent = Vec::new();
    while let Ok(message) = inbox.try_recv() {
        if let Some(hub_message::Kind::StdinData(data)) = message.kind {
            sent.push(data);
        }
    }
    sent
}

fn ack(engine: &TestEngine, hub: &Hub, task_id: u64, written: u64, closed: bool) {
    engine.send(
        hub,
        engine_message::Kind::StdinAck(StdinAck {
            task_id,
            attempt: 1,
            written,
            closed,
        }),
    );
}

#[tokio::test]
async fn a_full_window_holds_the_client_until_the_engine_has_written() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let (id, room) = streaming(&hub, job(&[], 0));
    assert_eq!(engine.assigned(), vec![id]);

    let chunk = Bytes::from(vec![b'x'; WINDOW / 2 + 1]);
    assert!(hub.push_stdin(&[id], &room, chunk.clone()).await);
    let pushing = tokio::spawn({
        let (hub, room, chunk) = (hub.clone(), room.clone(), chunk.clone());
        async move { hub.push_stdin(&[id], &room, chunk).await }
    });
    tokio::task::yield_now().await;
    assert!(!pushing.is_finished(), "two halves do not fit the window");

    ack(&engine, &hub, id, chunk.len() as u64, false);
    assert!(pushing.await.expect("push"), "room after the first half");
    let sent = stdin_sent(&mut engine.inbox);
    let offsets: Vec<u64> = sent.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, vec![0, chunk.len() as u64]);
    // What the engine wrote is recorded as the task's stdin.
    let info = hub.get_task(id).await.expect("task");
    assert_eq!(info.output_bytes, chunk.len() as u64);
}

#[tokio::test]
async fn a_task_placed_later_gets_its_stdin_from_the_start_and_then_the_end() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let busy = submit(&hub, 0);
    engine.run(&hub, busy, 1);
    let (id, room) = streaming(&hub, job(&[], 0));
    assert!(
        hub.push_stdin(&[id], &room, Bytes::from_static(b"one "))
            .await
    );
    assert!(
        hub.push_stdin(&[id], &room, Bytes::from_static(b"two"))
            .await
    );
    hub.end_stdin(&[id], StdinEnd::Eof);
    assert!(stdin_sent(&mut engine.inbox).is_empty(), "not placed yet");

    engine.finish(&hub, busy);
    let sent = stdin_sent(&mut engine.inbox);
    let seen: Vec<(u64, &[u8], bool)> = sent
        .iter()
        .map(|d| (d.offset, d.data.as_ref(), d.eof))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, &b"one "[..], false),
            (4, &b"two"[..], false),
            (7, &b""[..], true)
        ]
    );
}

#[tokio::test]
async fn once_every_task_has_closed_its_stdin_the_bytes_go_nowhere() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut one = TestEngine::register(&hub, "one", 1, &[]);
    let mut two = TestEngine::register(&hub, "two", 1, &[]);
    let mut all = job(&[], 0);
    all.targets = Some(warren_proto::v1::Targets {
        selector: Some(warren_proto::v1::targets::Selector::All(Default::default())),
        ..Default::default()
    });
    let (ids, room) = hub
        .submit_streaming(all, Submitter::default())
        .expect("submit");
    let (a, b) = (one.assigned()[0], two.assigned()[0]);
    assert!(
        hub.push_stdin(&ids, &room, Bytes::from_static(b"same"))
            .await
    );
    assert_eq!(stdin_sent(&mut one.inbox)[0].data, "same");
    assert_eq!(stdin_sent(&mut two.inbox)[0].data, "same");

    // One task closes its stdin having read 2 bytes (`head -c 2`): only that much is its.
    ack(&one, &hub, a, 2, true);
    assert!(
        hub.push_stdin(&ids, &room, Bytes::from_static(b"more"))
            .await
    );
    assert!(stdin_sent(&mut one.inbox).is_empty(), "it takes no more");
    assert_eq!(hub.get_task(a).await.expect("task").output_bytes, 2);
    ack(&two, &hub, b, 8, true);
    assert!(!hub.push_stdin(&ids, &room, Bytes::from_static(b"x")).await);
}

#[tokio::test]
async fn an_engine_that_comes_back_is_sent_again_what_it_had_not_written() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let (id, room) = streaming(&hub, job(&[], 0));
    engine.run(&hub, id, 1);
    for part in ["first", "second"] {
        assert!(hub.push_stdin(&[id], &room, Bytes::from(part)).await);
    }
    ack(&engine, &hub, id, 5, false);
    engine.leave(&hub);
    hub.end_stdin(&[id], StdinEnd::Hangup);

    let mut back = TestEngine::register_with(&hub, "e", 1, &[], &[(id, 1)]);
    let sent = stdin_sent(&mut back.inbox);
    let seen: Vec<(u64, &[u8], bool)> = sent
        .iter()
        .map(|d| (d.offset, d.data.as_ref(), d.hangup))
        .collect();
    assert_eq!(seen, vec![(5, &b"second"[..], false), (11, &b""[..], true)]);
}

#[test]
fn a_terminal_needs_streamed_stdin_and_streamed_stdin_no_retries() {
    let (hub, _clock) = hub(Settings::small("test"));
    let _engine = TestEngine::register(&hub, "e", 1, &[]);
    let mut tty = job(&[], 0);
    tty.spec = Some(TaskSpec {
        tty: Some(Tty::default()),
        ..tty.spec.unwrap_or_default()
    });
    let refused = hub
        .submit(tty.clone(), Submitter::default())
        .expect_err("nobody at the terminal");
    assert!(refused.to_string().contains("Interact"), "{refused}");
    assert!(hub.submit_streaming(tty, Submitter::default()).is_ok());

    let refused = hub
        .submit_streaming(job(&[], 2), Submitter::default())
        .expect_err("retries");
    assert!(refused.to_string().contains("retr"), "{refused}");
}

#[tokio::test]
async fn what_is_typed_at_a_terminal_is_not_kept() {
    let (hub, _clock) = hub(Settings::small("test"));
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let mut request = job(&[], 0);
    request.spec = Some(TaskSpec {
        tty: Some(Tty::default()),
        ..request.spec.unwrap_or_default()
    });
    let (id, room) = streaming(&hub, request);
    engine.run(&hub, id, 1);
    assert!(
        hub.push_stdin(&[id], &room, Bytes::from_static(b"secret\r"))
            .await
    );
    assert_eq!(stdin_sent(&mut engine.inbox).len(), 1, "it is sent");
    ack(&engine, &hub, id, 7, false);
    assert_eq!(hub.get_task(id).await.expect("task").output_bytes, 0);
    // And the window moved on all the same.
    let big = Bytes::from(vec![b'x'; WINDOW]);
    assert!(hub.push_stdin(&[id], &room, big).await);
}
