//! What the writer is told to do, and what it reports once a transaction has made it safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use warren_proto::v1::{Attempt, OutputGap, TaskEvent};

use crate::model::{Progress, SessionRow, TaskRow};

/// A read to run on the writer's connection.
pub(super) type Query = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// One change for the writer.
pub(crate) enum Op {
    /// Insert or update a task's row (and, on insert, its labels).
    Task(Box<TaskRow>),
    /// A non-output event to keep (a state change).
    Event {
        /// The task.
        task_id: u64,
        /// The event.
        event: TaskEvent,
        /// The counters after it.
        progress: Progress,
    },
    /// An output chunk: kept as an event, or added to a gap.
    Output {
        /// The task.
        task_id: u64,
        /// The event, if kept.
        event: Option<TaskEvent>,
        /// The gap it extends, if not kept.
        gap: Option<OutputGap>,
        /// The counters after it.
        progress: Progress,
        /// Bytes of hub memory this chunk holds until committed.
        bytes: u64,
    },
    /// A task's final event and row, together, so neither is ever committed alone.
    Finish {
        /// The final event.
        event: TaskEvent,
        /// The row, final.
        row: Box<TaskRow>,
    },
    /// A new task's dependencies (written once, with its first row).
    Dependencies {
        /// The task.
        task_id: u64,
        /// Tasks it waits for to end.
        after: Vec<u64>,
        /// Tasks it waits for to succeed.
        after_ok: Vec<u64>,
    },
    /// Insert or update one attempt.
    Attempt {
        /// The task.
        task_id: u64,
        /// The attempt.
        attempt: Attempt,
    },
    /// Remember an engine's id for its uuid.
    Engine {
        /// The id.
        id: u32,
        /// The uuid.
        uuid: String,
        /// The host.
        hostname: String,
        /// When it registered.
        registered_us: i64,
    },
    /// Forget engines: their ids for their uuids (ids are never handed out again).
    ForgetEngines(Vec<u32>),
    /// Insert or update a session's row.
    Session(Box<SessionRow>),
    /// A read, run after the writes queued before it are committed.
    Query(Query),
    /// Several changes, in order.
    Batch(Vec<Op>),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Task(_) => "Op::Task",
            Self::Event { .. } => "Op::Event",
            Self::Output { .. } => "Op::Output",
            Self::Finish { .. } => "Op::Finish",
            Self::Dependencies { .. } => "Op::Dependencies",
            Self::Attempt { .. } => "Op::Attempt",
            Self::Engine { .. } => "Op::Engine",
            Self::ForgetEngines(_) => "Op::ForgetEngines",
            Self::Session(_) => "Op::Session",
            Self::Query(_) => "Op::Query",
            Self::Batch(_) => "Op::Batch",
        })
    }
}

/// What a transaction made safe.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// Each task's counters as now committed.
    pub(crate) progress: HashMap<u64, Progress>,
    /// Tasks whose final state is now committed.
    pub(crate) finals: Vec<u64>,
    /// Output bytes committed, to release to the engines.
    pub(crate) bytes: u64,
    /// Bytes of events written into the database's rows (not into segment files): what the
    /// checkpointer counts.
    pub(crate) row_bytes: u64,
    /// Set on a report sent to the hub's receiver, until it is applied (dropped).
    pub(crate) sent: Option<SentReport>,
    /// The thread that committed it, for tests of who commits.
    #[cfg(test)]
    pub(crate) thread: Option<std::thread::ThreadId>,
}

/// Counts the reports sent and not yet applied: a report is handed back to the thread that
/// committed only when none is, so that the hub applies reports in the order of their commits.
#[derive(Debug, Default)]
pub(super) struct Unapplied(AtomicUsize);

impl Unapplied {
    /// Whether every report sent has been applied.
    pub(super) fn none(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// Carried by a sent report until it is applied (dropped).
#[derive(Debug)]
pub(crate) struct SentReport(Arc<Unapplied>);

impl SentReport {
    /// Counts one more report sent and not yet applied.
    pub(super) fn new(unapplied: &Arc<Unapplied>) -> Self {
        unapplied.0.fetch_add(1, Ordering::AcqRel);
        Self(unapplied.clone())
    }
}

impl Drop for SentReport {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::AcqRel);
    }
}
