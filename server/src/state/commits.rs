//! What the hub does once the database has made something safe: acknowledge output to the
//! engine (which may then forget it), show final states, and let go of finished tasks.

use std::sync::Arc;
use tokio::sync::mpsc;
use warren_proto::v1::hub_message;

use crate::state::{Hub, State};
use crate::store::Committed;

impl Hub {
    /// Applies one commit report.
    pub fn committed(&self, report: Committed) {
        let mut state = self.lock();
        for (task_id, progress) in &report.progress {
            let Some(task) = state.tasks.get_mut(task_id) else {
                continue;
            };
            task.log.committed(progress.next_seq);
            if progress.attempt == task.row.attempt {
                task.chunk_committed = task.chunk_committed.max(progress.chunk_seq);
            }
        }
        for task_id in &report.finals {
            if let Some(task) = state.tasks.get_mut(task_id) {
                task.publish_final();
            }
        }
        // Tell each engine what it may forget.
        for task_id in report.progress.keys().chain(&report.finals) {
            let finished = report.finals.contains(task_id);
            state.send_ack(*task_id, finished);
        }
        for task_id in &report.finals {
            if state.tasks.get(task_id).is_some_and(|t| t.is_done_with()) {
                state.tasks.remove(task_id);
            }
        }
        drop(state);
        if report.bytes > 0 {
            self.output_budget
                .add_permits(report.bytes.min(usize::MAX as u64) as usize);
        }
    }
}

impl State {
    /// Acknowledges a task's committed output (and end) to its engine, unless its followers
    /// lag; then the acknowledgement waits for them (see [`State::release_ack`]).
    pub fn send_ack(&mut self, task_id: u64, finished: bool) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let engine_id = task.row.engine_id;
        if let Some(ack) = task.ack(finished && task.row.state.is_final())
            && let Some(engine) = self.engines.get(engine_id)
        {
            engine.send(hub_message::Kind::Ack(ack));
        }
    }

    /// Sends an acknowledgement held back for lagging followers, once they have caught up.
    pub fn release_ack(&mut self, task_id: u64) {
        if self.tasks.get(&task_id).is_some_and(|t| t.ack_withheld) {
            self.send_ack(task_id, false);
        }
    }
}

/// Applies commit reports as they come, until the store stops.
pub(crate) async fn run(hub: Arc<Hub>, mut reports: mpsc::UnboundedReceiver<Committed>) {
    while let Some(report) = reports.recv().await {
        hub.committed(report);
    }
}
