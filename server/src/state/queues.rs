//! Where waiting tasks wait: the queues, their limits, placement of new tasks, and tasks
//! carried over from before a restart.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;
use warren_proto::v1::{Attempt, TaskState, targets};

use super::State;
use super::task::Task;
use crate::error::HubError;
use crate::model::{Submitter, TaskRow};
use crate::store::PastTask;
use crate::validate;

/// Tasks whose engine is away, and until when they wait for it.
#[derive(Debug)]
pub(super) struct Awaiting {
    /// When they are given up.
    pub(super) deadline: Instant,
    /// The tasks (assigned to it, or queued for it).
    pub(super) tasks: Vec<u64>,
    /// What happened to the engine, for messages.
    pub(super) why: String,
    /// How the engine was known, for messages.
    pub(super) who: String,
}

impl State {
    /// Puts recovered live tasks back: queued ones in their queues, placed ones waiting for
    /// their engine to come back, and those waiting for other tasks held again (`past` says
    /// how the tasks they wait for that are not live ended).
    pub(super) fn resume(
        &mut self,
        live: Vec<(TaskRow, Vec<Attempt>)>,
        past: &HashMap<u64, PastTask>,
        now: Instant,
    ) {
        let grace = self.settings.reattach_grace;
        let mut waiting = Vec::new();
        for (row, attempts) in live {
            let id = row.id;
            let held = row.state == TaskState::Waiting;
            let assigned = row.attempt > 0 && row.engine_id != 0;
            let engine_id = row.engine_id;
            let mut task = Task::resume(row, attempts, self.settings.log_limits);
            // Engines that died with it stay avoided.
            task.avoid = task
                .attempts
                .iter()
                .filter(|a| a.ended_us != 0)
                .map(|a| a.engine_id)
                .collect();
            if task.row.asked.session_id.is_some() && !assigned {
                // A cell is sent with its task's first write; one never sent can't run.
                let end = task.end(
                    TaskState::Failed,
                    "the hub stopped before sending this cell to its session".into(),
                );
                self.write(end);
                self.tasks.insert(id, task);
                continue;
            }
            self.tasks.insert(id, task);
            if held {
                waiting.push(id);
            } else if assigned {
                self.awaiting
                    .entry(engine_id)
                    .or_insert_with(|| Awaiting {
                        deadline: now + grace,
                        tasks: Vec::new(),
                        why: format!("did not come back within {grace:?} of the hub's restart"),
                        who: format!("engine {engine_id}"),
                    })
                    .tasks
                    .push(id);
            } else if !self.fail_orphaned_stdin(id) {
                self.enqueue(id);
            }
        }
        for id in waiting {
            self.resume_waiting(id, past);
        }
        if !self.tasks.is_empty() {
            tracing::info!(
                tasks = self.tasks.len(),
                waiting_for_tasks = self.deps.len(),
                waiting_for_engines = self.awaiting.len(),
                "carried on the history's unfinished tasks"
            );
        }
    }

    /// Puts a queued task in the queue it belongs to; it holds its stdin's share of the input
    /// budget until it starts or ends.
    pub(super) fn enqueue(&mut self, id: u64) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        if task.input.is_none() {
            task.input = self.input.hold(task.row.asked.spec.stdin.len() as u64);
        }
        let pid = task.row.asked.submitter.pid;
        match task.row.asked.pinned {
            Some(engine) => self.queues.entry(engine).or_default().push_back(id),
            None => self.unplaced.push_back(id),
        }
        *self.queued_by_client.entry(pid).or_default() += 1;
    }

    /// Takes a task out of whichever queue holds it (a no-op if none does).
    pub(super) fn dequeue(&mut self, id: u64) -> bool {
        let Some(task) = self.tasks.get(&id) else {
            return false;
        };
        let pid = task.row.asked.submitter.pid;
        let queue = match task.row.asked.pinned {
            Some(engine) => self.queues.get_mut(&engine),
            None => Some(&mut self.unplaced),
        };
        let removed = queue
            .and_then(|q| q.iter().position(|&t| t == id).map(|pos| q.remove(pos)))
            .is_some();
        if let Some(engine) = task.row.asked.pinned {
            self.drop_queue_if_empty(engine);
        }
        if removed {
            self.dequeued(pid);
        }
        removed
    }

    /// Drops an engine's own queue once it is empty: the scheduler takes an empty map to mean
    /// that no engine has work of its own waiting.
    pub(super) fn drop_queue_if_empty(&mut self, engine: u32) {
        if self.queues.get(&engine).is_some_and(VecDeque::is_empty) {
            self.queues.remove(&engine);
        }
    }

    /// Counts a task of `pid` out of the queues.
    pub(super) fn dequeued(&mut self, pid: u32) {
        if let Some(count) = self.queued_by_client.get_mut(&pid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.queued_by_client.remove(&pid);
            }
        }
    }

    /// Whether no task runs or waits for a slot: nothing else is coming to share the
    /// transaction of a change made now (see `Store::write`).
    pub(super) fn is_idle(&self) -> bool {
        self.unplaced.is_empty()
            && self.queues.values().all(VecDeque::is_empty)
            && !self.engines.busy()
    }

    fn queued_total(&self) -> usize {
        self.unplaced.len() + self.queues.values().map(VecDeque::len).sum::<usize>()
    }

    /// Refuses more queued work than the limits allow.
    pub(super) fn check_room(&self, more: usize, submitter: Submitter) -> Result<(), HubError> {
        let limits = &self.settings.limits;
        // Tasks waiting for others count: each will be queued.
        let queued = self.queued_total() + self.deps.len();
        if queued + more > limits.max_queued {
            return Err(HubError::exhausted(format!(
                "the hub already has {queued} tasks waiting for engines or for other tasks (--max-queued {}); wait for some to start, or abort some",
                limits.max_queued
            )));
        }
        let mine = self
            .queued_by_client
            .get(&submitter.pid)
            .copied()
            .unwrap_or(0)
            + self.deps.of_client(submitter.pid);
        if mine + more > limits.max_queued_per_client {
            return Err(HubError::exhausted(format!(
                "this process (pid {}) already has {mine} tasks waiting for engines (--max-queued-per-client {}); wait for some to start",
                submitter.pid, limits.max_queued_per_client
            )));
        }
        Ok(())
    }

    /// Which engine each new task goes to (`None`: any), for a request's targets.
    pub(super) fn placements(
        &self,
        selector: Option<targets::Selector>,
        engine_labels: &HashMap<String, String>,
    ) -> Result<Vec<Option<u32>>, HubError> {
        let labelled = || {
            self.engines
                .iter()
                .filter(|e| e.has_labels(engine_labels))
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        let no_such_labels = || HubError::NoEngineWithLabels(validate::labels_text(engine_labels));
        match selector {
            None | Some(targets::Selector::Any(_)) => {
                if !engine_labels.is_empty() && labelled().is_empty() {
                    return Err(no_such_labels());
                }
                Ok(vec![None])
            }
            Some(targets::Selector::All(_)) => {
                if self.engines.is_empty() {
                    return Err(HubError::Precondition(
                        "no engines are registered, so `all` selects none; start one with `warren-engine`"
                            .into(),
                    ));
                }
                let ids = labelled();
                if ids.is_empty() {
                    return Err(no_such_labels());
                }
                Ok(ids.into_iter().map(Some).collect())
            }
            Some(targets::Selector::Engines(list)) => {
                if !engine_labels.is_empty() {
                    return Err(HubError::invalid(
                        "targets.engine_labels go with `all` or `any`, not with a list of engine ids",
                    ));
                }
                if list.ids.is_empty() {
                    return Err(HubError::invalid(
                        "targets.engines lists no engine ids; name at least one, or use `any` or `all`",
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for &id in &list.ids {
                    if !seen.insert(id) {
                        return Err(HubError::invalid(format!(
                            "engine {id} is listed twice in targets.engines"
                        )));
                    }
                    if self.engines.get(id).is_none() {
                        return Err(HubError::UnknownEngine(id));
                    }
                }
                Ok(list.ids.iter().copied().map(Some).collect())
            }
            Some(targets::Selector::Sessions(_) | targets::Selector::SessionGroup(_)) => {
                Err(HubError::invalid(
                    "sessions run cells (spec.code), not tasks; aim tasks at engines",
                ))
            }
        }
    }
}
