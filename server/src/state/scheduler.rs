//! Placing queued tasks on engines as their slots free up.
//!
//! A task named for an engine waits in that engine's queue; a task for "any" engine waits in
//! one shared queue. Whenever something changes, free slots are filled, least loaded engine
//! first, each with the oldest task it may run: its own queue's head, or the oldest shared
//! task whose labels it has and that has not killed it before.

use warren_proto::v1::{Assign, hub_message};

use crate::state::State;
use crate::state::registry::Engine;

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use tokio::sync::mpsc;
    use warren_proto::v1::{
        EngineMessage, ExecuteRequest, Hello, HubMessage, Targets, TaskFinished, TaskResult,
        TaskSpec, TaskState, engine_message, hub_message, targets, task_spec,
    };

    use crate::state::task::Submitter;
    use crate::state::{Hub, Settings};
    use crate::store::{Location, Store};

    type Inbox = mpsc::UnboundedReceiver<Result<HubMessage, tonic::Status>>;

    fn hub() -> Arc<Hub> {
        let (store, recovered, _commits) = Store::open(Location::Memory).expect("store");
        let settings = Settings::small("test");
        Hub::new(settings, store, recovered)
    }

    fn engine(hub: &Hub, uuid: &str, slots: u32, labels: &[(&str, &str)]) -> (u32, u64, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hello = Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: uuid.into(),
            slots,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let (id, connection) = hub.register_engine(hello, tx).expect("register");
        (id, connection, rx)
    }

    fn job(labels: &[(&str, &str)]) -> ExecuteRequest {
        ExecuteRequest {
            spec: Some(TaskSpec {
                command: Some(task_spec::Command::Script("true".into())),
                ..Default::default()
            }),
            targets: Some(Targets {
                selector: Some(targets::Selector::Any(Default::default())),
                engine_labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            }),
            ..Default::default()
        }
    }

    fn assigned(rx: &mut Inbox) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Ok(Ok(message)) = rx.try_recv() {
            if let Some(hub_message::Kind::Assign(assign)) = message.kind {
                ids.push(assign.task_id);
            }
        }
        ids
    }

    fn finish(hub: &Hub, engine: u32, connection: u64, task_id: u64) {
        let message = EngineMessage {
            kind: Some(engine_message::Kind::Finished(TaskFinished {
                task_id,
                attempt: 1,
                chunks: 0,
                result: Some(TaskResult {
                    state: TaskState::Succeeded as i32,
                    ..Default::default()
                }),
            })),
        };
        hub.engine_message(engine, connection, message, 0);
    }

    #[tokio::test]
    async fn any_goes_to_the_least_loaded_engine_and_waits_for_free_slots() {
        let hub = hub();
        let (e1, c1, mut rx1) = engine(&hub, "one", 1, &[]);
        let (_e2, _c2, mut rx2) = engine(&hub, "two", 2, &[]);
        for _ in 0..5 {
            hub.submit(job(&[]), Submitter::default()).expect("submit");
        }
        // Three slots in all: three tasks start, two wait.
        let on_one = assigned(&mut rx1);
        let on_two = assigned(&mut rx2);
        assert_eq!((on_one.len(), on_two.len()), (1, 2));
        assert_eq!(hub.queue_status().unassigned, 2);

        // A freed slot takes the oldest waiting task.
        finish(&hub, e1, c1, on_one[0]);
        assert_eq!(assigned(&mut rx1), vec![4]);
        assert_eq!(hub.queue_status().unassigned, 1);
    }

    #[tokio::test]
    async fn labelled_tasks_wait_for_an_engine_with_the_labels() {
        let hub = hub();
        let (_plain, _, mut plain_rx) = engine(&hub, "plain", 4, &[]);
        let (_gpu, _, mut gpu_rx) = engine(&hub, "gpu", 1, &[("gpu", "yes")]);
        let first = hub
            .submit(job(&[("gpu", "yes")]), Submitter::default())
            .expect("submit")[0];
        let second = hub
            .submit(job(&[("gpu", "yes")]), Submitter::default())
            .expect("submit")[0];
        let plain_job = hub.submit(job(&[]), Submitter::default()).expect("submit")[0];
        assert_eq!(assigned(&mut gpu_rx), vec![first]);
        // The second labelled task waits for the gpu engine; the plain one passes it by.
        assert_eq!(assigned(&mut plain_rx), vec![plain_job]);
        assert_eq!(hub.queue_status().unassigned, 1);
        let _ = second;
        let missing = hub
            .submit(job(&[("tpu", "yes")]), Submitter::default())
            .expect_err("no engine has it");
        assert_eq!(missing.code(), tonic::Code::NotFound);
    }
}
