//! What the hub does once the history has made something safe: let the engines know (see
//! `acks`), show final states, let go of finished tasks, and give the output budget back.

use super::acks::AckCause;
use super::{Hub, State};
use crate::store::Committed;

impl Hub {
    /// Applies one commit report.
    pub(crate) fn committed(&self, report: Committed) {
        self.update(|state| state.committed(&report));
        if !report.finals.is_empty() {
            self.quieter.notify_waiters();
        }
        if report.bytes > 0 {
            self.output_budget
                .add_permits(report.bytes.min(usize::MAX as u64) as usize);
        }
    }
}

impl State {
    fn committed(&mut self, report: &Committed) {
        for (task_id, progress) in &report.progress {
            let Some(task) = self.tasks.get_mut(task_id) else {
                continue;
            };
            task.log.committed(progress.next_seq);
            if progress.attempt == task.row.attempt {
                task.chunk_committed = task.chunk_committed.max(progress.chunk_seq);
            }
        }
        for task_id in &report.finals {
            if let Some(task) = self.tasks.get_mut(task_id) {
                task.publish_final();
            }
        }
        for task_id in report.progress.keys().chain(&report.finals) {
            let finished = report.finals.contains(task_id);
            self.acknowledge(*task_id, AckCause::Committed { finished });
        }
        for task_id in &report.finals {
            if self.tasks.get(task_id).is_some_and(|t| t.is_done_with()) {
                self.let_go(*task_id);
            }
        }
    }
}
