//! Running the engine's tasks: [`Runners`] starts one runner per task (`supervise.rs`: its
//! process, its output pumps, its timeout, and the signals sent to it; `pipes.rs`: its
//! output pipes) and owns them all.
//!
//! Every runner is tracked, so an exiting engine waits for them instead of polling, and each
//! runs under a `task` span with the task, its attempt and the engine's id. A runner that
//! panics does not vanish: its task's process group is killed and the task reported FAILED,
//! with the reason, like any other end.

mod interactive;
#[cfg(test)]
mod interactive_tests;
mod pipes;
mod supervise;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use warren_proto::now_us;
use warren_proto::v1::{TaskResult, TaskSpec, TaskState};

use crate::process;
use crate::tasks::Tasks;

/// The default of `--outside-kill-hold-ms`.
pub const DEFAULT_OUTSIDE_KILL_HOLD: Duration = Duration::from_millis(500);

/// The engine's task runners.
#[derive(Debug)]
pub struct Runners {
    tasks: Arc<Tasks>,
    grace: Duration,
    outside_kill_hold: Duration,
    tracker: TaskTracker,
}

/// Where a running task reports.
#[derive(Clone, Debug)]
struct Run {
    task_id: u64,
    attempt: u32,
    tasks: Arc<Tasks>,
}

impl Runners {
    /// No runners yet; tasks report to `tasks` and get `grace` between SIGTERM and SIGKILL.
    pub fn new(tasks: Arc<Tasks>, grace: Duration) -> Self {
        Self {
            tasks,
            grace,
            outside_kill_hold: DEFAULT_OUTSIDE_KILL_HOLD,
            tracker: TaskTracker::new(),
        }
    }

    /// How long the end of a task killed by a signal the engine did not send is held back
    /// before it is reported (see `--outside-kill-hold-ms`).
    pub fn outside_kill_hold(mut self, hold: Duration) -> Self {
        self.outside_kill_hold = hold;
        self
    }

    /// Takes a task the hub assigned to this engine (which it knows as `engine_id`) and
    /// starts it; its start, output and end go to the tasks.
    pub fn start(&self, engine_id: u32, task_id: u64, attempt: u32, spec: TaskSpec) {
        let (control, control_rx) = mpsc::unbounded_channel();
        self.tasks.add(task_id, attempt, control);
        let run = Run {
            task_id,
            attempt,
            tasks: self.tasks.clone(),
        };
        let span = tracing::info_span!("task", task = task_id, attempt, engine = engine_id);
        let timing = supervise::Timing {
            grace: self.grace,
            outside_kill_hold: self.outside_kill_hold,
        };
        let runner = supervise::supervise(run.clone(), spec, timing, control_rx);
        let runner = tokio::spawn(runner.instrument(span.clone()));
        // A second task holds the runner's handle, so that a panic is reported, not lost.
        self.tracker.spawn(
            async move {
                if let Err(err) = runner.await {
                    run.failed(err);
                }
            }
            .instrument(span),
        );
    }

    /// How many runners have not ended yet.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether every runner has ended.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Waits for every runner to end (the engine is exiting: no new ones), up to `limit`;
    /// false if some did not.
    pub async fn wait(&self, limit: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_ok()
    }
}

impl Run {
    /// The runner died (it panicked): kill what the task started and report it FAILED.
    fn failed(&self, err: JoinError) {
        let why = match err.try_into_panic() {
            Ok(payload) => match panic_text(payload.as_ref()) {
                Some(text) => format!("it panicked: {text}"),
                None => "it panicked".to_owned(),
            },
            Err(_) => "it was cancelled".to_owned(),
        };
        let started = self.tasks.started_as(self.task_id, self.attempt);
        if let Some((pgid, _)) = started {
            process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
        }
        // The ids are fields of the event too, not only of the runner's span: the span's
        // callsite may be disabled while another thread registers it without a subscriber.
        tracing::error!(task = self.task_id, attempt = self.attempt, %why, "the task's runner failed; reporting the task failed");
        let result = TaskResult {
            state: TaskState::Failed as i32,
            exit: None,
            error: format!(
                "the engine's runner for this task failed ({why}); its processes were killed"
            ),
            started_us: started.map_or(0, |(_, at)| at),
            finished_us: now_us(),
            attempt: self.attempt,
            ..Default::default()
        };
        self.tasks.finished(self.task_id, self.attempt, result);
    }
}

/// A panic's message, if it has one.
fn panic_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}
