//! Assertions and waits the end-to-end tests share, so that each test says what it checks in
//! a line instead of repeating the steps.

use tonic::Code;
use warren::Events;
use warren::proto::{TaskEvent, task_event::Kind};

use crate::events::next_event;
use crate::process::PATIENCE;

/// Checks that `err` is the hub's answer with this code, and that its message says `words`.
#[track_caller]
pub fn assert_status(err: &warren::Error, code: Code, words: &str) {
    let Some(status) = err.status() else {
        panic!("expected a {code:?} status from the hub, got: {err}");
    };
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(words),
        "{:?} does not say {words:?}",
        status.message()
    );
}

/// Reads events until a task's first output, and returns that event (panics if the stream
/// ends first, or nothing comes within [`PATIENCE`]).
pub async fn first_output(events: &mut Events) -> TaskEvent {
    loop {
        let event = next_event(events, PATIENCE)
            .await
            .expect("the stream ended before any output");
        if matches!(event.kind, Some(Kind::Output(_))) {
            return event;
        }
    }
}
