//! Placing queued tasks on engines as their slots free up.
//!
//! A task named for an engine waits in that engine's queue; a task for "any" engine waits in
//! one shared queue. Whenever something changes, free slots are filled, least loaded engine
//! first, each with the oldest task it may run: its own queue's head, or the oldest shared
//! task whose labels it has and that has not killed it before.

use warren_proto::v1::{Assign, hub_message};

use super::State;
use super::registry::Engine;

/// How far into the shared queue an engine looks for a task it may run.
const SCAN_LIMIT: usize = 1024;

impl State {
    /// Starts every queued task that has a free slot to go to.
    pub(super) fn dispatch(&mut self) {
        loop {
            let Some((engine_id, task_id, shared_index)) = self.next_placement() else {
                return;
            };
            match shared_index {
                Some(index) => {
                    self.unplaced.remove(index);
                }
                None => self.pop_own(engine_id),
            }
            self.assign(engine_id, task_id);
        }
    }

    /// The least loaded engine with a free slot and work it may take: (engine, task, index
    /// in the shared queue if the task comes from there).
    ///
    /// Cheap when nothing waits (every event calls it) and when an idle engine can take the
    /// work (no engine is less loaded than an idle one), so that it does not cost a scan of
    /// every engine per task (5,000 engines made it 452 µs per task).
    fn next_placement(&self) -> Option<(u32, u64, Option<usize>)> {
        if self.unplaced.is_empty() && self.queues.is_empty() {
            return None;
        }
        let mut best: Option<(u64, u32, u64, Option<usize>)> = None;
        for engine in self.engines.iter().filter(|e| e.has_free_slot()) {
            if best.is_some_and(|(best_load, ..)| best_load == 0) {
                // Ties go to the engine met first, and nothing is below an idle engine.
                break;
            }
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

    /// Takes the head of an engine's own queue (and the queue, once it is empty).
    fn pop_own(&mut self, engine_id: u32) {
        if let Some(queue) = self.queues.get_mut(&engine_id) {
            queue.pop_front();
        }
        self.drop_queue_if_empty(engine_id);
    }

    /// Work on an engine per slot, running or waiting, scaled to compare engines of any size.
    fn load(&self, engine: &Engine) -> u64 {
        let queued = self.queues.get(&engine.id).map_or(0, |q| q.len());
        ((engine.task_count() + queued) as u64 * 1024) / engine.slots() as u64
    }

    /// Whether a shared task may go to this engine.
    fn may_run(&self, engine: &Engine, task_id: u64) -> bool {
        self.tasks.get(&task_id).is_some_and(|task| {
            engine.has_labels(&task.row.asked.engine_labels) && !task.avoid.contains(&engine.id)
        })
    }

    /// Hands a task to an engine.
    fn assign(&mut self, engine_id: u32, task_id: u64) {
        let Some(engine) = self.engines.get_mut(engine_id) else {
            return;
        };
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let pid = task.row.asked.submitter.pid;
        let writes = task.begin_attempt(engine_id, &engine.hello.uuid, &engine.hello.hostname);
        engine.take(task_id);
        engine.send(hub_message::Kind::Assign(Assign {
            task_id,
            spec: Some(task.row.asked.spec.clone()),
            attempt: task.row.attempt,
        }));
        self.write(writes);
        self.dequeued(pid);
        self.resend_stdin(task_id);
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Submitter;
    use crate::state::Settings;
    use crate::state::testing::{TestEngine, hub, job};

    #[test]
    fn any_goes_to_the_least_loaded_engine_and_waits_for_free_slots() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut one = TestEngine::register(&hub, "one", 1, &[]);
        let mut two = TestEngine::register(&hub, "two", 2, &[]);
        for _ in 0..5 {
            hub.submit(job(&[], 0), Submitter::default())
                .expect("submit");
        }
        // Three slots in all: three tasks start, two wait.
        let on_one = one.assigned();
        let on_two = two.assigned();
        assert_eq!((on_one.len(), on_two.len()), (1, 2));
        assert_eq!(hub.queue_status().unassigned, 2);

        // A freed slot takes the oldest waiting task.
        one.finish(&hub, on_one[0]);
        assert_eq!(one.assigned(), vec![4]);
        assert_eq!(hub.queue_status().unassigned, 1);
    }

    #[test]
    fn labelled_tasks_wait_for_an_engine_with_the_labels() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut plain = TestEngine::register(&hub, "plain", 4, &[]);
        let mut gpu = TestEngine::register(&hub, "gpu", 1, &[("gpu", "yes")]);
        let first = hub
            .submit(job(&[("gpu", "yes")], 0), Submitter::default())
            .expect("submit")[0];
        let second = hub
            .submit(job(&[("gpu", "yes")], 0), Submitter::default())
            .expect("submit")[0];
        let plain_job = hub
            .submit(job(&[], 0), Submitter::default())
            .expect("submit")[0];
        assert_eq!(gpu.assigned(), vec![first]);
        // The second labelled task waits for the gpu engine; the plain one passes it by.
        assert_eq!(plain.assigned(), vec![plain_job]);
        assert_eq!(hub.queue_status().unassigned, 1);
        let _ = second;
        let missing = hub
            .submit(job(&[("tpu", "yes")], 0), Submitter::default())
            .expect_err("no engine has it");
        assert_eq!(tonic::Status::from(missing).code(), tonic::Code::NotFound);
    }

    #[test]
    fn an_engines_own_queue_is_dropped_once_empty_and_its_tasks_still_go_in_order() {
        use warren_proto::v1::{EngineIds, targets};
        let (hub, _clock) = hub(Settings::small("test"));
        let mut one = TestEngine::register(&hub, "one", 1, &[]);
        let pinned = |engine| {
            let mut request = job(&[], 0);
            if let Some(targets) = request.targets.as_mut() {
                targets.selector =
                    Some(targets::Selector::Engines(EngineIds { ids: vec![engine] }));
            }
            hub.submit(request, Submitter::default()).expect("submit")[0]
        };
        let (first, second) = (pinned(one.id), pinned(one.id));
        assert_eq!(one.assigned(), vec![first]);
        assert_eq!(hub.view(|state| state.queues.len()), 1, "the second waits");
        one.finish(&hub, first);
        assert_eq!(one.assigned(), vec![second]);
        assert!(
            hub.view(|state| state.queues.is_empty()),
            "an emptied queue is dropped, so that an empty map means nothing of its own waits"
        );
        // Taken out of its queue while waiting (aborted): the queue goes too.
        let third = pinned(one.id);
        assert!(hub.view(|state| !state.queues.is_empty()));
        hub.update(|state| state.dequeue(third));
        assert!(hub.view(|state| state.queues.is_empty()));
    }
}
