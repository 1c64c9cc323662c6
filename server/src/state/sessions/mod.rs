//! Sessions: long-lived interpreters on engines, and the cells (tasks with `spec.code`) that
//! run in them.
//!
//! The hub keeps each session's record (`model::SessionRow`, also in the history) and the
//! cells it has sent to the session's engine and that have not ended yet, in submission order.
//! **The queue of cells lives on the engine**: the hub sends a cell (`RunCell`) as soon as it
//! is submitted, and the engine runs a session's cells one at a time in the order received.
//! That way the next cell starts the moment the last one's `done` is read, without a round
//! trip through the hub between cells (which would cost more than the cell itself on this
//! kind of machine), and the queued cells, like running tasks, stay with the engine when the
//! hub restarts. The engine ends every cell it was sent (a dead or closed session's queued
//! cells included) and reports it as a task's end; the hub ends them itself only when the
//! engine is gone for good.
//!
//! The files: `open` (open, close, restart, list, get), `cells` (submitting cells),
//! `engines` (what engines say of their sessions, and sessions of engines that left).

mod cells;
mod engines;
mod open;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::v1::{SessionInfo, SessionState};

use super::task::Task;
use crate::model::SessionRow;

/// How long `OpenSessions` and `RestartSession` wait for the interpreters to be ready.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A session the hub holds: every one not closed.
#[derive(Debug)]
pub(super) struct Session {
    /// Its record.
    pub(super) row: SessionRow,
    /// Cells sent to its engine, oldest first; ended ones leave from the front as they end.
    pub(super) cells: VecDeque<u64>,
}

impl Session {
    /// Its state as callers see it: `Busy` is a ready session with cells not yet ended.
    fn shown(&self, tasks: &BTreeMap<u64, Task>) -> SessionState {
        match self.row.state {
            SessionState::Idle if self.live_cells(tasks).next().is_some() => SessionState::Busy,
            state => state,
        }
    }

    /// Its cells that have not ended, oldest first.
    fn live_cells<'a>(&'a self, tasks: &'a BTreeMap<u64, Task>) -> impl Iterator<Item = u64> + 'a {
        self.cells
            .iter()
            .copied()
            .filter(|id| tasks.get(id).is_some_and(|task| !task.is_ending()))
    }

    /// Lets ended cells at the front go.
    fn prune(&mut self, tasks: &BTreeMap<u64, Task>) {
        while let Some(front) = self.cells.front() {
            if tasks.get(front).is_some_and(|task| !task.is_ending()) {
                break;
            }
            self.cells.pop_front();
        }
    }

    /// The session as `GetSession` and `ListSessions` show it.
    fn info(&self, tasks: &BTreeMap<u64, Task>) -> SessionInfo {
        self.row
            .info(self.shown(tasks), self.live_cells(tasks).collect())
    }
}

/// Every session not closed, by id.
#[derive(Debug)]
pub(super) struct Sessions {
    by_id: BTreeMap<u64, Session>,
    /// The highest id handed out (ids are never used twice, across restarts too).
    last_id: u64,
    /// Woken whenever a session's state changes, for `OpenSessions` and `RestartSession`.
    changed: Arc<Notify>,
}

impl Sessions {
    /// No sessions held yet; ids go on after `last_id`.
    pub(super) fn new(last_id: u64) -> Self {
        Self {
            by_id: BTreeMap::new(),
            last_id,
            changed: Arc::new(Notify::new()),
        }
    }

    /// How many live sessions (starting, idle or busy) an engine has.
    pub(super) fn live_on(&self, engine_id: u32) -> usize {
        self.by_id
            .values()
            .filter(|s| s.row.engine_id == engine_id && s.row.state.is_live())
            .count()
    }

    /// A cell ended: lets the ended cells at the front of its session's queue go.
    pub(super) fn cell_ended(&mut self, session_id: u64, tasks: &BTreeMap<u64, Task>) {
        if let Some(session) = self.by_id.get_mut(&session_id) {
            session.prune(tasks);
        }
    }

    fn notify(&self) {
        self.changed.notify_waiters();
    }
}
