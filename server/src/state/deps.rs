//! Dependencies between tasks: a task submitted with `after` (its dependencies must end) or
//! `after_ok` (they must succeed) waits, `TASK_STATE_WAITING`, outside every queue until they
//! have. When a task's end is decided, its dependents are settled in the same change: queued
//! once nothing holds them, or ended `aborted`, naming it, when it was to succeed and did not;
//! their own dependents follow by the same rule, in the same change.
//!
//! Ends are noticed in one place: every final write goes through `State::write`, which notes
//! the task, and `Hub::update` settles the dependents of what ended before it hands the
//! writes to the store. A dependent is therefore released in the same transaction as the end
//! it waited for, so the history never holds one without the other, and it starts before that
//! end is committed (no wait for the disk; a hub killed in between forgets both, and the
//! engine's report of the end releases it again).

use std::collections::{BTreeMap, HashMap};
use warren_proto::v1::TaskState;

use super::State;
use crate::store::PastTask;

#[cfg(test)]
#[path = "deps_tests.rs"]
mod tests;

/// How the tasks that left memory lately ended. A submission reads the history for its
/// dependencies that are not in memory before it takes the lock; one that leaves memory in
/// between is judged by this instead of by another read. Without it, a submission waiting for
/// a large batch that is still running saw new departures at every read, and gave up.
#[derive(Debug, Default)]
pub(super) struct Departed {
    ends: BTreeMap<u64, TaskState>,
}

impl Departed {
    /// Ends remembered at most (the lowest ids go first): far more tasks than leave memory
    /// while the history is read, for about 0.5 MiB.
    const KEPT: usize = 16_384;

    /// A task has left memory, ended in `state`.
    pub(super) fn record(&mut self, task_id: u64, state: TaskState) {
        self.ends.insert(task_id, state);
        while self.ends.len() > Self::KEPT {
            self.ends.pop_first();
        }
    }

    /// Forgets every end: the history is about to lose some of them (a purge, retention), and
    /// a task purged must be judged by its tombstone, or as forgotten.
    pub(super) fn forget(&mut self) {
        self.ends.clear();
    }

    /// How the task ended, if it left memory lately.
    pub(super) fn end_of(&self, task_id: u64) -> Option<PastTask> {
        self.ends.get(&task_id).map(|&state| PastTask::Ended(state))
    }
}

impl State {
    /// Lets a task that has ended, shown its end and has no follower leave memory.
    pub(super) fn let_go(&mut self, task_id: u64) {
        if let Some(task) = self.tasks.remove(&task_id) {
            self.departed.record(task_id, task.row.state);
        }
    }
}

/// Who waits for whom.
#[derive(Debug, Default)]
pub(super) struct Dependencies {
    /// Each waiting task, and how many of its dependencies have not ended.
    waiting: HashMap<u64, usize>,
    /// Each live dependency, and the tasks waiting for it (with whether each needs it to
    /// succeed). A dependent that left `waiting` (aborted) is skipped when its turn comes.
    dependents: HashMap<u64, Vec<(u64, bool)>>,
    /// Waiting tasks per submitting process, counted with its queued ones.
    by_client: HashMap<u32, usize>,
}

impl Dependencies {
    /// Waiting tasks, in all.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Waiting tasks of one client process.
    pub(super) fn of_client(&self, pid: u32) -> usize {
        self.by_client.get(&pid).copied().unwrap_or(0)
    }

    /// Holds `task` until each of `live` (dependency, needs success) has ended.
    fn hold(&mut self, task: u64, pid: u32, live: &[(u64, bool)]) {
        self.waiting.insert(task, live.len());
        for &(dep, ok) in live {
            self.dependents.entry(dep).or_default().push((task, ok));
        }
        *self.by_client.entry(pid).or_default() += 1;
    }

    /// Stops holding `task`; says whether it was held.
    fn release(&mut self, task: u64, pid: u32) -> bool {
        if self.waiting.remove(&task).is_none() {
            return false;
        }
        if let Some(count) = self.by_client.get_mut(&pid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_client.remove(&pid);
            }
        }
        true
    }
}

/// How one dependency stands for a task being submitted (or carried over a restart).
pub(super) enum Standing {
    /// It has not ended: wait for it.
    Live,
    /// It has ended as the task needs.
    Met,
    /// It was to succeed and did not: the task is aborted at once, saying why.
    Failed(String),
}

/// How a dependency that has ended stands, for a task that needs it to succeed (`ok`) or only
/// to end. A purged task counts as succeeded only if its tombstone says so.
pub(super) fn standing(dep: u64, ok: bool, past: PastTask) -> Result<Standing, String> {
    let failed = |state: TaskState, purged: &str| {
        Standing::Failed(format!(
            "task {dep}{purged} ended {}, and this task was to run only after it succeeded (after_ok)",
            state.label()
        ))
    };
    Ok(match past {
        PastTask::Live => Standing::Live,
        _ if !ok => Standing::Met,
        PastTask::Ended(TaskState::Succeeded) | PastTask::Purged(TaskState::Succeeded) => {
            Standing::Met
        }
        PastTask::Ended(state) => failed(state, ""),
        PastTask::Purged(state) => failed(state, " (since purged)"),
        PastTask::Forgotten => {
            return Err(format!(
                "task {dep} was purged long ago and the hub no longer knows whether it succeeded; \
                 drop it from after_ok (or wait for it with `after`, which any end satisfies)"
            ));
        }
    })
}

/// Why a task waits, in words: its dependencies, the first few named.
pub(super) fn waiting_reason(live: &[(u64, bool)]) -> String {
    const NAMED: usize = 5;
    let ok = live.iter().all(|&(_, ok)| ok);
    let mut ids: Vec<String> = live
        .iter()
        .take(NAMED)
        .map(|(id, _)| id.to_string())
        .collect();
    if live.len() > NAMED {
        ids.push(format!("and {} more", live.len() - NAMED));
    }
    let what = match (live.len(), ok) {
        (1, true) => "task {} to succeed",
        (1, false) => "task {} to end",
        (_, true) => "tasks {} to succeed",
        (_, false) => "tasks {} to end",
    };
    format!("waiting for {}", what.replace("{}", &ids.join(", ")))
}

impl State {
    /// Holds a new task until its live dependencies have ended.
    pub(super) fn hold(&mut self, task: u64, pid: u32, live: &[(u64, bool)]) {
        self.deps.hold(task, pid, live);
    }

    /// Notes that a task's end was decided (from `State::write`), for
    /// [`settle_dependents`](Self::settle_dependents).
    pub(super) fn note_end(&mut self, task: u64, state: TaskState) {
        self.ended.push((task, state));
    }

    /// Settles the dependents of every task whose end was decided in this change, and theirs
    /// in turn; starts what can start.
    pub(super) fn settle_dependents(&mut self) {
        let mut released = false;
        while let Some((ended, state)) = self.ended.pop() {
            // An aborted waiting task waits no more.
            if let Some(task) = self.tasks.get(&ended) {
                let pid = task.row.asked.submitter.pid;
                self.deps.release(ended, pid);
            }
            for (dependent, ok) in self.deps.dependents.remove(&ended).unwrap_or_default() {
                let Some(remaining) = self.deps.waiting.get_mut(&dependent) else {
                    continue;
                };
                if ok && state != TaskState::Succeeded {
                    let why = format!(
                        "task {ended} ended {}, and this task was to run only after it succeeded (after_ok)",
                        state.label()
                    );
                    if let Some(task) = self.tasks.get_mut(&dependent) {
                        let end = task.end(TaskState::Aborted, why);
                        self.write(end);
                    }
                    continue;
                }
                *remaining = remaining.saturating_sub(1);
                if *remaining == 0 {
                    released |= self.release_waiting(dependent, true);
                }
            }
        }
        if released {
            self.dispatch();
        }
    }

    /// Queues a task nothing holds any more; says whether it was queued. With `engine_gone`, a
    /// task for one engine that has gone for good since the task was submitted fails instead
    /// (not at start-up, when no engine has come back yet: the task then waits for its engine
    /// as every queued task does).
    fn release_waiting(&mut self, id: u64, engine_gone: bool) -> bool {
        let Some(task) = self.tasks.get(&id) else {
            return false;
        };
        let pid = task.row.asked.submitter.pid;
        self.deps.release(id, pid);
        let gone = task.row.asked.pinned.filter(|&engine| {
            engine_gone
                && self.engines.get(engine).is_none()
                && !self.awaiting.contains_key(&engine)
        });
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        if let Some(engine) = gone {
            let why = format!(
                "engine {engine} left while the task waited for other tasks; submit it again"
            );
            let end = task.end(TaskState::Failed, why);
            self.write(end);
            return false;
        }
        let writes = task.set_state(
            TaskState::Queued,
            "the tasks it waited for have ended".into(),
        );
        self.write(writes);
        self.enqueue(id);
        true
    }
}

impl State {
    /// Holds again a task that waited when the hub stopped, settling what ended meanwhile.
    /// `past` says how its dependencies that are not live ended. One the history has
    /// forgotten counts as met: this task still waits, so that dependency's end, committed
    /// with this task's settling, did not abort it.
    pub(super) fn resume_waiting(&mut self, id: u64, past: &HashMap<u64, PastTask>) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let asked = &task.row.asked;
        let pid = asked.submitter.pid;
        let (mut live, mut failed) = (Vec::new(), None);
        let deps = asked.after.iter().map(|&d| (d, false));
        for (dep, ok) in deps.chain(asked.after_ok.iter().map(|&d| (d, true))) {
            let known = match self.tasks.get(&dep) {
                Some(t) if t.row.state.is_final() => PastTask::Ended(t.row.state),
                Some(_) => PastTask::Live,
                None => past.get(&dep).copied().unwrap_or(PastTask::Forgotten),
            };
            match standing(dep, ok, known) {
                Ok(Standing::Live) => live.push((dep, ok)),
                Ok(Standing::Failed(why)) => failed = failed.or(Some(why)),
                Ok(Standing::Met) | Err(_) => {}
            }
        }
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        if let Some(why) = failed {
            let end = task.end(TaskState::Aborted, why);
            self.write(end);
        } else if live.is_empty() {
            self.release_waiting(id, false);
        } else {
            self.hold(id, pid, &live);
        }
    }
}
