//! The hub's shared vocabulary: who submitted a task, what was asked, the task's row and
//! counters as the history keeps them, and what a follower reads next.
//!
//! The store and the state both speak it, and it depends on neither: the history is written
//! and read in these terms, never in the state's.

mod session;

pub(crate) use session::{SessionExit, SessionRow};

use std::collections::HashMap;
use warren_proto::v1::{Attempt, OutputGap, TaskEvent, TaskInfo, TaskResult, TaskSpec, TaskState};

/// Who submitted a task, from the socket's peer credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Submitter {
    /// The caller's uid.
    pub(crate) uid: u32,
    /// The caller's pid.
    pub(crate) pid: u32,
}

/// What was asked for a task: fixed at submission, never changed after.
#[derive(Clone, Debug)]
pub(crate) struct Submission {
    /// What it runs.
    pub(crate) spec: TaskSpec,
    /// The engine the request named, if any.
    pub(crate) pinned: Option<u32>,
    /// Labels an engine must have to run it.
    pub(crate) engine_labels: HashMap<String, String>,
    /// Its own labels.
    pub(crate) labels: HashMap<String, String>,
    /// Retries the request allowed if its engine dies.
    pub(crate) retries: u32,
    /// Who submitted it.
    pub(crate) submitter: Submitter,
    /// When, in microseconds since the epoch.
    pub(crate) submitted_us: i64,
    /// The session a cell runs in (`None` for a task).
    pub(crate) session_id: Option<u64>,
    /// Tasks it waits for to end, however they end.
    pub(crate) after: Vec<u64>,
    /// Tasks it waits for to succeed.
    pub(crate) after_ok: Vec<u64>,
}

/// A task's counters, as the history keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// The seq the next event gets.
    pub(crate) next_seq: u64,
    /// Output bytes written in all.
    pub(crate) output_bytes: u64,
    /// Output bytes kept for replay.
    pub(crate) kept_bytes: u64,
    /// Output bytes not kept.
    pub(crate) dropped_bytes: u64,
    /// The engine's last output chunk received for the current attempt.
    pub(crate) chunk_seq: u64,
    /// The attempt `chunk_seq` belongs to.
    pub(crate) attempt: u32,
}

/// A task's whole row: what was asked, and where it stands.
#[derive(Clone, Debug)]
pub(crate) struct TaskRow {
    /// Its id.
    pub(crate) id: u64,
    /// What was asked.
    pub(crate) asked: Submission,
    /// Its state.
    pub(crate) state: TaskState,
    /// Why.
    pub(crate) reason: String,
    /// The engine of its current (or last) attempt; 0 if none.
    pub(crate) engine_id: u32,
    /// Its current attempt number; 0 before the first.
    pub(crate) attempt: u32,
    /// Times an engine died while running it.
    pub(crate) engine_deaths: u32,
    /// When its current attempt's process started.
    pub(crate) started_us: i64,
    /// How it ended.
    pub(crate) result: Option<TaskResult>,
    /// Its counters.
    pub(crate) progress: Progress,
}

impl TaskRow {
    /// A new task's row: queued, on the engine it was pinned to (if any), with no attempt yet.
    pub(crate) fn queued(id: u64, asked: Submission) -> Self {
        Self {
            id,
            engine_id: asked.pinned.unwrap_or(0),
            asked,
            state: TaskState::Queued,
            reason: String::new(),
            attempt: 0,
            engine_deaths: 0,
            started_us: 0,
            result: None,
            progress: Progress::default(),
        }
    }

    /// The row as `GetTask` and `ListTasks` show it.
    pub(crate) fn info(&self, attempts: Vec<Attempt>) -> TaskInfo {
        TaskInfo {
            id: self.id,
            spec: Some(self.asked.spec.clone()),
            engine_id: self.engine_id,
            state: self.state as i32,
            result: self.result.clone(),
            submitted_us: self.asked.submitted_us,
            submitter_uid: self.asked.submitter.uid,
            submitter_pid: self.asked.submitter.pid,
            next_seq: self.progress.next_seq,
            output_bytes: self.progress.output_bytes,
            output_bytes_dropped: self.progress.dropped_bytes,
            reason: self.reason.clone(),
            labels: self.asked.labels.clone(),
            retries: self.asked.retries,
            attempts,
            output_bytes_kept: self.progress.kept_bytes,
            session_id: self.asked.session_id.unwrap_or(0),
            after: self.asked.after.clone(),
            after_ok: self.asked.after_ok.clone(),
        }
    }
}

/// What a follower reads next.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Entry {
    /// An event.
    Event(TaskEvent),
    /// Events that were not kept.
    Gap(OutputGap),
}

impl Entry {
    /// The entry as an event on the wire (a gap becomes a gap event of this task).
    pub(crate) fn into_event(self, task_id: u64, engine_id: u32) -> TaskEvent {
        match self {
            Self::Event(event) => event,
            Self::Gap(gap) => TaskEvent {
                task_id,
                engine_id,
                seq: gap.first_seq,
                time_us: warren_proto::now_us(),
                kind: Some(warren_proto::v1::task_event::Kind::Gap(gap)),
            },
        }
    }
}
