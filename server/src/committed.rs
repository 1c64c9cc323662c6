//! What the hub does once the database has made something safe: acknowledge output to the
//! engine (which may then forget it), show final states, and let go of finished tasks.

use std::sync::Arc;
use tokio::sync::mpsc;
use warren_proto::v1::{Ack, hub_message};

use crate::hub::Hub;
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
        let mut acks = Vec::new();
        for task_id in report.progress.keys().chain(&report.finals) {
            if let Some(task) = state.tasks.get(task_id) {
                acks.push((
                    task.row.engine_id,
                    Ack {
                        task_id: *task_id,
                        attempt: task.row.attempt,
                        chunk_seq: task.chunk_committed,
                        finished: task.row.state.is_final() && report.finals.contains(task_id),
                    },
                ));
            }
        }
        for (engine_id, ack) in acks {
            if let Some(engine) = state.engines.get(engine_id) {
                engine.send(hub_message::Kind::Ack(ack));
            }
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

/// Applies commit reports as they come, until the store stops.
pub(crate) async fn run(hub: Arc<Hub>, mut reports: mpsc::UnboundedReceiver<Committed>) {
    while let Some(report) = reports.recv().await {
        hub.committed(report);
    }
}
