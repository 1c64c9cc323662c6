//! A task as the hub keeps it: what to run, where, its state and its event log.

use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::now_us;
use warren_proto::v1::{
    StateChange, TaskEvent, TaskInfo, TaskResult, TaskSpec, TaskState, task_event::Kind,
};

use crate::tasklog::{LogLimits, TaskLog};

/// Who submitted a task, from the socket's peer credentials.
#[derive(Clone, Copy, Debug, Default)]
pub struct Submitter {
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid.
    pub pid: u32,
}

/// One task.
#[derive(Debug)]
pub struct Task {
    /// Its id.
    pub id: u64,
    /// What it runs.
    pub spec: TaskSpec,
    /// The engine the request named, or `None` for "any".
    pub pinned: Option<u32>,
    /// The engine it is placed on; 0 until then.
    pub engine_id: u32,
    /// Where it is in its life.
    pub state: TaskState,
    /// Why it is in that state, when there is more to say.
    pub reason: String,
    /// How it ended, once it has.
    pub result: Option<TaskResult>,
    /// When it was submitted.
    pub submitted_us: i64,
    /// When its process started; 0 until then.
    pub started_us: i64,
    /// Who submitted it.
    pub submitter: Submitter,
    /// Its events.
    pub log: TaskLog,
    /// Woken whenever an event is added, for followers.
    pub notify: Arc<Notify>,
    /// Followers attached now; the live window is kept for them after the task ends.
    pub followers: usize,
}

impl Task {
    /// A new queued task; its first event says so.
    pub fn new(
        id: u64,
        spec: TaskSpec,
        pinned: Option<u32>,
        submitter: Submitter,
        limits: LogLimits,
    ) -> Self {
        let mut task = Self {
            id,
            spec,
            pinned,
            engine_id: pinned.unwrap_or(0),
            state: TaskState::Queued,
            reason: String::new(),
            result: None,
            submitted_us: now_us(),
            started_us: 0,
            submitter,
            log: TaskLog::new(limits),
            notify: Arc::new(Notify::new()),
            followers: 0,
        };
        task.record(Kind::State(StateChange {
            state: TaskState::Queued as i32,
            reason: String::new(),
        }));
        task
    }

    /// Appends an event and wakes the followers.
    pub fn record(&mut self, kind: Kind) {
        self.log.push(TaskEvent {
            task_id: self.id,
            engine_id: self.engine_id,
            seq: 0,
            time_us: now_us(),
            kind: Some(kind),
        });
        self.notify.notify_waiters();
    }

    /// Moves to a live state, saying why.
    pub fn set_state(&mut self, state: TaskState, reason: String) {
        self.state = state;
        self.reason.clone_from(&reason);
        self.record(Kind::State(StateChange {
            state: state as i32,
            reason,
        }));
    }

    /// Ends the task with this result; later calls change nothing.
    pub fn finish(&mut self, result: TaskResult) {
        if self.state.is_final() {
            return;
        }
        self.state = result.state();
        self.reason.clone_from(&result.error);
        self.result = Some(result.clone());
        self.record(Kind::Result(result));
        if self.followers == 0 {
            self.log.seal();
        }
    }

    /// A follower attached.
    pub fn follower_joined(&mut self) {
        self.followers += 1;
    }

    /// A follower left; once the task is final and nobody follows, only what is kept remains.
    pub fn follower_left(&mut self) {
        self.followers = self.followers.saturating_sub(1);
        if self.followers == 0 && self.state.is_final() {
            self.log.seal();
        }
    }

    /// Ends the task without it having run to an end of its own (aborted, lost, failed).
    pub fn end(&mut self, state: TaskState, error: String) {
        self.finish(TaskResult {
            state: state as i32,
            exit: None,
            error,
            started_us: self.started_us,
            finished_us: now_us(),
        });
    }

    /// The task as `GetTask` and `ListTasks` show it.
    pub fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            spec: Some(self.spec.clone()),
            engine_id: self.engine_id,
            state: self.state as i32,
            result: self.result.clone(),
            submitted_us: self.submitted_us,
            submitter_uid: self.submitter.uid,
            submitter_pid: self.submitter.pid,
            next_seq: self.log.next_seq(),
            output_bytes: self.log.output_bytes(),
            output_bytes_dropped: self.log.dropped_bytes(),
            reason: self.reason.clone(),
        }
    }
}
