//! Placing queued tasks on engines as their slots free up.
//!
//! A task named for an engine waits in that engine's queue; a task for "any" engine waits in
//! one shared queue. Whenever something changes, free slots are filled, least loaded engine
//! first, each with the oldest task it may run: its own queue's head, or the oldest shared
//! task whose labels it has and that has not killed it before.

use warren_proto::v1::{Assign, hub_message};

use crate::hub::State;
use crate::registry::Engine;

/// How far into the shared queue an engine looks for a task it may run.
const SCAN_LIMIT: usize = 1024;

impl State {
    /// Starts every queued task that has a free slot to go to.
    pub fn dispatch(&mut self) {
        loop {
            let Some((engine_id, task_id, shared_index)) = self.next_placement() else {
                return;
            };
            match shared_index {
                Some(index) => {
                    self.unplaced.remove(index);
                }
                None => {
                    if let Some(queue) = self.queues.get_mut(&engine_id) {
                        queue.pop_front();
                    }
                }
            }
            self.assign(engine_id, task_id);
        }
    }

    /// The least loaded engine with a free slot and work it may take: (engine, task, index
    /// in the shared queue if the task comes from there).
    fn next_placement(&self) -> Option<(u32, u64, Option<usize>)> {
        let mut best: Option<(u64, u32, u64, Option<usize>)> = None;
        for engine in self.engines.iter().filter(|e| e.has_free_slot()) {
            let load = self.load(engine);
            if best.is_some_and(|(best_load, ..)| best_load <= load) {
                continue;
            }
            let own = self.queues.get(&engine.id).and_then(|q| q.front().copied());
            let shared = self
                .unplaced
                .iter()
                .take(SCAN_LIMIT)
                .position(|id| self.may_run(engine, *id))
                .map(|i| (self.unplaced[i], i));
            let pick = match (own, shared) {
                (Some(own), Some((shared, i))) if shared < own => Some((shared, Some(i))),
                (Some(own), _) => Some((own, None)),
                (None, Some((shared, i))) => Some((shared, Some(i))),
                (None, None) => None,
            };
            if let Some((task, index)) = pick {
                best = Some((load, engine.id, task, index));
            }
        }
        best.map(|(_, engine, task, index)| (engine, task, index))
    }

    /// Work on an engine per slot, running or waiting, scaled to compare engines of any size.
    fn load(&self, engine: &Engine) -> u64 {
        let queued = self.queues.get(&engine.id).map_or(0, |q| q.len());
        ((engine.active.len() + queued) as u64 * 1024) / engine.slots() as u64
    }

    /// Whether a shared task may go to this engine.
    fn may_run(&self, engine: &Engine, task_id: u64) -> bool {
        self.tasks.get(&task_id).is_some_and(|task| {
            engine.has_labels(&task.row.engine_labels) && !task.avoid.contains(&engine.id)
        })
    }

    /// Hands a task to an engine.
    fn assign(&mut self, engine_id: u32, task_id: u64) {
        let store = self.store.clone();
        let Some(engine) = self.engines.get_mut(engine_id) else {
            return;
        };
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let pid = task.row.submitter.pid;
        task.begin_attempt(
            engine_id,
            &engine.hello.uuid,
            &engine.hello.hostname,
            &store,
        );
        engine.active.insert(task_id);
        engine.send(hub_message::Kind::Assign(Assign {
            task_id,
            spec: Some(task.row.spec.clone()),
            attempt: task.row.attempt,
        }));
        self.dequeued(pid);
    }
}
