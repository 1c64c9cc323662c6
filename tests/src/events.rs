//! Reading task events in tests.

use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::timeout;
use warren::{Event, EventKind, Events, Outcome, OutputStream};

use crate::process::PATIENCE;

/// Every event of a stream, until it ends (panics after [`PATIENCE`]).
pub async fn collect(mut events: Events) -> Vec<Event> {
    let mut all = Vec::new();
    let result = timeout(PATIENCE, async {
        while let Some(event) = events.try_next().await.expect("event stream failed") {
            all.push(event);
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "event stream did not end in time; got {all:#?}"
    );
    all
}

/// The next event, within `limit`.
pub async fn next_event(events: &mut Events, limit: Duration) -> Option<Event> {
    timeout(limit, events.try_next())
        .await
        .expect("no event in time")
        .expect("event stream failed")
}

/// The bytes a task wrote to one stream, in order.
pub fn output(events: &[Event], task_id: u64, stream: OutputStream) -> Vec<u8> {
    events
        .iter()
        .filter(|e| e.task_id == task_id)
        .filter_map(|e| match &e.kind {
            EventKind::Output { stream: s, data } if *s == stream => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// A task's stdout as text.
pub fn stdout_text(events: &[Event], task_id: u64) -> String {
    String::from_utf8_lossy(&output(events, task_id, OutputStream::Stdout)).into_owned()
}

/// Each task's final result, by task id.
pub fn results(events: &[Event]) -> BTreeMap<u64, (u32, Outcome)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Result(result) => Some((e.task_id, (e.engine_id, result.clone()))),
            _ => None,
        })
        .collect()
}

/// The only task's result.
pub fn only_result(events: &[Event]) -> Outcome {
    let all = results(events);
    assert_eq!(all.len(), 1, "expected one task, got {all:#?}");
    all.into_values()
        .next()
        .map(|(_, r)| r)
        .expect("one result")
}

/// Checks that each task's events have consecutive seqs from `from`.
pub fn assert_contiguous(events: &[Event], task_id: u64, from: u64) {
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| e.task_id == task_id)
        .map(|e| e.seq)
        .collect();
    let expected: Vec<u64> = (from..from + seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "task {task_id}'s events are not consecutive"
    );
}
