//! What the hub does once the history has made something safe: let the engines know (see
//! `acks`), show final states, let go of finished tasks, and give the output budget back.

use std::collections::HashSet;

use super::acks::AckCause;
use super::{Hub, State};
use crate::store::Committed;

impl Hub {
    /// Applies one commit report sent by the writer thread.
    pub(crate) fn committed(&self, report: Committed) {
        self.update(|state| state.committed(&report));
        self.after_commit(&report);
    }

    /// What a commit frees outside the state: the output budget, and waiters for less in hand.
    pub(super) fn after_commit(&self, report: &Committed) {
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
    /// Applies a commit report to the state.
    pub(super) fn committed(&mut self, report: &Committed) {
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
        // One acknowledgement per task: most ends come with their last progress.
        let finals: HashSet<u64> = report.finals.iter().copied().collect();
        for task_id in report.progress.keys() {
            let finished = finals.contains(task_id);
            self.acknowledge(*task_id, AckCause::Committed { finished });
        }
        for task_id in &report.finals {
            if !report.progress.contains_key(task_id) {
                self.acknowledge(*task_id, AckCause::Committed { finished: true });
            }
        }
        for task_id in &report.finals {
            if self.tasks.get(task_id).is_some_and(|t| t.is_done_with()) {
                self.let_go(*task_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::testing::{TestEngine, hub, submit};
    use warren_proto::v1::hub_message;

    /// The acknowledgements in an engine's inbox now, without waiting: (task, finished).
    fn acks_now(engine: &mut TestEngine) -> Vec<(u64, bool)> {
        let mut acks = Vec::new();
        while let Ok(message) = engine.inbox.try_recv() {
            if let Some(hub_message::Kind::Ack(ack)) = message.kind {
                acks.push((ack.task_id, ack.finished));
            }
        }
        acks
    }

    #[test]
    fn a_lone_tasks_end_is_committed_and_applied_before_the_engines_report_is_answered() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut engine = TestEngine::register(&hub, "e1", 1, &[]);
        let id = submit(&hub, 0);
        engine.run(&hub, id, 1);
        engine.finish(&hub, id);
        // Nothing else runs: the end was committed on this thread and its report applied
        // under the same lock, not left to the thread that applies the writer's reports.
        assert_eq!(acks_now(&mut engine), vec![(id, true)]);
        assert!(
            hub.view(|state| !state.tasks.contains_key(&id)),
            "nobody follows it: the task left memory once its end was shown"
        );
    }

    #[test]
    fn while_another_task_runs_an_end_is_applied_when_the_writers_report_comes() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut engine = TestEngine::register(&hub, "e1", 2, &[]);
        let (first, second) = (submit(&hub, 0), submit(&hub, 0));
        let mut assigned = engine.assigned();
        assigned.sort_unstable();
        assert_eq!(assigned, vec![first, second]);
        engine.start(&hub, first, 1);
        engine.start(&hub, second, 1);
        engine.finish(&hub, first);
        // The second still runs: the writer thread commits, and the applier applies later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut acks = Vec::new();
        while !acks.contains(&(first, true)) && std::time::Instant::now() < deadline {
            acks.extend(acks_now(&mut engine));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(acks.contains(&(first, true)), "{acks:?}");
    }
}
