//! Assertions, waits and lookups the end-to-end tests share, so that each test says what it
//! checks in a line instead of repeating the steps.

use std::time::Duration;
use tonic::Code;
use warren::proto::{ListTasksRequest, TaskInfo, TaskState};
use warren::{Event, EventKind, Events, Outcome};

use crate::events::{next_event, only_result};
use crate::process::{Cluster, PATIENCE, eventually};

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

/// Checks that `err` is the hub's answer with this code.
#[track_caller]
pub fn assert_code(err: &warren::Error, code: Code) {
    assert_status(err, code, "");
}

/// Checks that the only task in `events` ended in `state`, for a reason that says `words`;
/// returns its result.
#[track_caller]
pub fn assert_ended(events: &[Event], state: TaskState, words: &str) -> Outcome {
    let result = only_result(events);
    assert_eq!(result.state, state, "{result:?}");
    assert!(
        result.error.contains(words),
        "{:?} does not say {words:?}",
        result.error
    );
    result
}

/// Reads events until a task's first output, and returns that event (panics if the stream
/// ends first, or nothing comes within [`PATIENCE`]).
pub async fn first_output(events: &mut Events) -> Event {
    loop {
        let event = next_event(events, PATIENCE)
            .await
            .expect("the stream ended before any output");
        if matches!(event.kind, EventKind::Output { .. }) {
            return event;
        }
    }
}

/// Waits (up to `limit`) until task `task` is in `state`, and returns its reason then; panics
/// with the last state seen if it does not get there.
pub async fn reason_in_state(
    client: &warren::Client,
    task: u64,
    state: TaskState,
    limit: Duration,
) -> String {
    let seen = eventually(limit, || async {
        let info = client.task(task).await.map_err(|e| e.to_string())?;
        if info.state() == state {
            Ok(info.reason)
        } else {
            Err(format!("{:?}: {}", info.state(), info.reason))
        }
    })
    .await;
    seen.unwrap_or_else(|last| panic!("task {task} did not become {state:?}: {last}"))
}

/// The newest task the hub knows.
pub async fn newest_task(cluster: &Cluster) -> TaskInfo {
    let page = cluster
        .client()
        .await
        .tasks_page(ListTasksRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("tasks");
    page.tasks.into_iter().next().expect("a task")
}
