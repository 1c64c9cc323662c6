//! What becomes of an engine's tasks when the engine goes away, and when it comes back.
//!
//! A gone engine's tasks wait for it until a deadline (the liveness timeout, or the reattach
//! grace after a hub restart). An engine that registers again takes back the tasks it still
//! has; those it no longer has, and those of an engine that does not come back in time, are
//! settled: placed again if they never started, retried elsewhere if their request allowed
//! it, or ended `lost` (or `failed`, for a task pinned to that engine).

use std::collections::HashSet;
use std::time::Instant;
use warren_proto::v1::{CancelTask, TaskReport, TaskState, hub_message};

use super::State;
use super::acks::AckCause;
use super::queues::Awaiting;
use crate::store::Op;

impl State {
    /// Makes an engine's tasks wait for it until `deadline`.
    pub(super) fn await_engine(
        &mut self,
        engine_id: u32,
        who: String,
        tasks: HashSet<u64>,
        deadline: Instant,
        why: &str,
    ) {
        let entry = self.awaiting.entry(engine_id).or_insert_with(|| Awaiting {
            deadline,
            tasks: Vec::new(),
            why: why.to_owned(),
            who: who.clone(),
        });
        entry.deadline = entry.deadline.min(deadline);
        entry.why = why.to_owned();
        entry.who = who;
        entry.tasks.extend(tasks);
    }

    /// Takes back what a registering engine still has, and settles what it no longer has.
    pub(super) fn reattach(
        &mut self,
        engine_id: u32,
        reports: Vec<TaskReport>,
        left_behind: Vec<u64>,
    ) {
        let mut expected: HashSet<u64> = self
            .awaiting
            .remove(&engine_id)
            .map(|a| a.tasks.into_iter().collect())
            .unwrap_or_default();
        expected.extend(left_behind);
        for report in reports {
            expected.remove(&report.task_id);
            let ours = self.tasks.get_mut(&report.task_id).filter(|task| {
                task.row.engine_id == engine_id
                    && task.row.attempt == report.attempt
                    && !task.is_ending()
            });
            let Some(engine) = self.engines.get_mut(engine_id) else {
                return;
            };
            match ours {
                Some(task) => {
                    engine.take(report.task_id);
                    // The engine resends everything after what the database has.
                    task.chunk_received = task.chunk_committed;
                    self.acknowledge(report.task_id, AckCause::Reattached);
                }
                None => engine.send(hub_message::Kind::Cancel(CancelTask {
                    task_id: report.task_id,
                    discard: true,
                    attempt: report.attempt,
                })),
            }
        }
        // Tasks the engine no longer has: never received, or lost with an engine restart.
        let who = self
            .engines
            .get(engine_id)
            .map(|e| e.describe())
            .unwrap_or_default();
        for task_id in expected {
            let started = self
                .tasks
                .get(&task_id)
                .is_some_and(|t| t.row.state == TaskState::Running);
            if started || self.is_cell(task_id) {
                self.settle_task(task_id, engine_id, &who, "came back without it");
            } else if let Some(task) = self.tasks.get_mut(&task_id) {
                if task.is_ending() || task.row.attempt == 0 {
                    continue;
                }
                let ended = task.end_attempt("the engine never had it");
                self.write(ended);
                self.enqueue(task_id);
            }
        }
    }

    /// Settles the tasks of engines that have not come back by `now`.
    pub(super) fn settle_overdue(&mut self, now: Instant) {
        let overdue: Vec<u32> = self
            .awaiting
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for engine_id in overdue {
            let Some(awaiting) = self.awaiting.remove(&engine_id) else {
                continue;
            };
            tracing::warn!(engine = engine_id, why = %awaiting.why, tasks = awaiting.tasks.len(), "engine written off");
            self.write_off(engine_id, awaiting);
        }
        self.dispatch();
    }

    /// Settles what waited for an engine that will not come back: its sessions, its tasks,
    /// and the tasks queued for it alone. The caller dispatches.
    pub(super) fn write_off(&mut self, engine_id: u32, awaiting: Awaiting) {
        self.sessions_written_off(engine_id, &awaiting.who, &awaiting.why);
        for task_id in awaiting.tasks {
            self.settle_task(task_id, engine_id, &awaiting.who, &awaiting.why);
        }
        // Tasks queued for it alone can't run.
        for task_id in self.queues.remove(&engine_id).unwrap_or_default() {
            let pid = self.tasks.get(&task_id).map(|t| t.row.asked.submitter.pid);
            if let Some(pid) = pid {
                self.dequeued(pid);
            }
            if let Some(task) = self.tasks.get_mut(&task_id) {
                let end = task.end(
                    TaskState::Failed,
                    format!(
                        "{} {} before the task started; submit it again",
                        awaiting.who, awaiting.why
                    ),
                );
                self.write(end);
            }
        }
    }

    /// Ends, or retries, one task whose engine is gone.
    fn settle_task(&mut self, task_id: u64, engine_id: u32, who: &str, why: &str) {
        let max_deaths = self.settings.max_engine_deaths;
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if task.is_ending() || task.row.engine_id != engine_id {
            return;
        }
        if let Some(session) = task.row.asked.session_id {
            // A cell dies with its session's interpreter: never placed again.
            let why = format!("{who} {why}: session {session}'s interpreter is gone with it");
            let writes: Vec<Op> = task
                .end_attempt(&why)
                .into_iter()
                .chain(task.end(TaskState::Lost, why))
                .collect();
            self.write(writes);
            self.cell_ended(task_id);
            return;
        }
        let mut writes: Vec<Op> = Vec::new();
        let requeue;
        if task.row.state != TaskState::Running {
            // Placed, but not known to have started: no retry is used up, but the engine is
            // avoided and counted, so a task that kills engines before they can say so still
            // stops being placed.
            let before = format!("{who} {why} before the task was known to start");
            writes.extend(task.end_attempt(&before));
            task.avoid.push(engine_id);
            task.unconfirmed_losses += 1;
            let losses = task.unconfirmed_losses + task.row.engine_deaths;
            requeue = task.row.asked.pinned.is_none() && losses < max_deaths;
            if task.row.asked.pinned.is_some() {
                writes.extend(task.end(TaskState::Failed, format!("{before}; submit it again")));
            } else if !requeue {
                let why = format!(
                    "{before}; not placed again: {losses} engines have died holding it (--max-engine-deaths {max_deaths})"
                );
                writes.extend(task.end(TaskState::Lost, why));
            } else {
                task.row.engine_id = 0;
                let reason = format!("{before}; placing it elsewhere");
                writes.extend(task.set_state(TaskState::Queued, reason));
            }
        } else {
            task.row.engine_deaths += 1;
            task.avoid.push(engine_id);
            let deaths = task.row.engine_deaths;
            let lost = format!("{who} {why} while the task was running");
            writes.extend(task.end_attempt(&lost));
            let total = deaths + task.unconfirmed_losses;
            let retry = task.row.asked.pinned.is_none() && deaths <= task.row.asked.retries;
            requeue = retry && total < max_deaths;
            if !retry {
                writes.extend(task.end(TaskState::Lost, lost));
            } else if !requeue {
                let why = format!(
                    "{lost}; not retried again: {total} engines have died holding it (--max-engine-deaths {max_deaths})"
                );
                writes.extend(task.end(TaskState::Lost, why));
            } else {
                let reason = format!(
                    "{lost}; retrying elsewhere (retry {deaths} of {})",
                    task.row.asked.retries
                );
                task.row.engine_id = 0;
                writes.extend(task.set_state(TaskState::Queued, reason));
            }
        }
        self.write(writes);
        if requeue {
            self.enqueue(task_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use warren_proto::v1::{Attempt, TaskState};

    use crate::model::{Submission, Submitter, TaskRow};
    use crate::state::testing::{
        TestEngine, assert_decided, decided, hub, job, state_of, submit, sweep_after,
    };
    use crate::state::{Clock, Hub, Settings};
    use crate::store::{Location, Store};

    #[test]
    fn an_engine_that_comes_back_within_the_timeout_keeps_its_task() {
        let (hub, clock) = hub(Settings::small("test"));
        let mut engine = TestEngine::register(&hub, "flaky", 1, &[]);
        let id = submit(&hub, 0);
        engine.run(&hub, id, 1);
        engine.leave(&hub);
        sweep_after(&hub, &clock, 2999);
        assert_decided(&hub, id, TaskState::Running, "pid 4242");
        let back = TestEngine::register_with(&hub, "flaky", 1, &[], &[(id, 1)]);
        clock.advance(std::time::Duration::from_secs(10));
        back.heartbeat(&hub);
        hub.sweep();
        assert_decided(&hub, id, TaskState::Running, "pid 4242");
        back.finish(&hub, id);
        assert_eq!(state_of(&hub, id), TaskState::Succeeded);
    }

    #[test]
    fn a_running_task_without_retries_is_lost_when_its_engine_stays_away() {
        let (hub, clock) = hub(Settings::small("test"));
        let mut engine = TestEngine::register(&hub, "gone", 1, &[]);
        let id = submit(&hub, 0);
        engine.run(&hub, id, 1);
        engine.leave(&hub);
        sweep_after(&hub, &clock, 3000);
        let why = "closed its stream while the task was running";
        assert_decided(&hub, id, TaskState::Lost, why);
    }

    #[test]
    fn a_task_not_known_to_start_is_placed_again_without_using_a_retry() {
        let (hub, clock) = hub(Settings::small("test"));
        let mut first = TestEngine::register(&hub, "first", 1, &[]);
        let mut second = TestEngine::register(&hub, "second", 1, &[]);
        let id = submit(&hub, 0);
        assert_eq!(first.assigned(), vec![id]);
        first.leave(&hub);
        clock.advance(std::time::Duration::from_secs(3));
        second.heartbeat(&hub);
        hub.sweep();
        // No retries were allowed, and none was used.
        assert_eq!(second.assigned(), vec![id]);
        assert_decided(&hub, id, TaskState::Queued, "placing it elsewhere");
    }

    #[test]
    fn engine_deaths_stop_the_retries_at_the_limit() {
        let mut settings = Settings::small("test");
        settings.max_engine_deaths = 2;
        let (hub, clock) = hub(settings);
        let id = submit(&hub, 5);
        for (attempt, uuid) in [(1, "one"), (2, "two")] {
            let mut engine = TestEngine::register(&hub, uuid, 1, &[]);
            engine.run(&hub, id, attempt);
            engine.leave(&hub);
            sweep_after(&hub, &clock, 3000);
        }
        let why = "2 engines have died holding it (--max-engine-deaths 2)";
        assert_decided(&hub, id, TaskState::Lost, why);
    }

    #[test]
    fn tasks_from_before_a_restart_wait_for_their_engine_for_the_reattach_grace() {
        let (store, mut recovered, _commits) = Store::open(Location::Memory).expect("store");
        let asked = Submission {
            spec: job(&[], 0).spec.unwrap_or_default(),
            pinned: None,
            engine_labels: Default::default(),
            labels: Default::default(),
            retries: 0,
            submitter: Submitter::default(),
            submitted_us: 1,
            session_id: None,
            after: Vec::new(),
            after_ok: Vec::new(),
        };
        let mut row = TaskRow::queued(7, asked);
        (row.state, row.engine_id, row.attempt) = (TaskState::Running, 3, 1);
        let attempt = Attempt {
            number: 1,
            engine_id: 3,
            ..Default::default()
        };
        recovered.live.push((row, vec![attempt]));
        recovered.next_task_id = 8;
        let clock = Clock::manual();
        let hub = Hub::with_clock(Settings::small("test"), store, recovered, clock.clone());
        // The reattach grace is 3 s in the small settings.
        sweep_after(&hub, &clock, 2999);
        assert_eq!(decided(&hub, 7).map(|d| d.0), Some(TaskState::Running));
        sweep_after(&hub, &clock, 1);
        let why = "engine 3 did not come back within 3s of the hub's restart";
        assert_decided(&hub, 7, TaskState::Lost, why);
    }
}
