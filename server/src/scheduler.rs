//! Placing queued tasks on engines as their slots free up.
//!
//! A task named for an engine waits in that engine's queue; a task for "any" engine waits in
//! one shared queue. Whenever something changes, free slots are filled, least loaded engine
//! first, each time with the oldest task it may run.

use warren_proto::v1::{Assign, hub_message};

use crate::hub::State;

impl State {
    /// Starts every queued task that has a free slot to go to.
    pub fn dispatch(&mut self) {
        while let Some(engine_id) = self.next_engine_with_work() {
            let Some(engine) = self.engines.get_mut(engine_id) else {
                return;
            };
            let from_shared = match (engine.queue.front(), self.unplaced.front()) {
                (Some(own), Some(shared)) => shared < own,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (None, None) => return,
            };
            let task_id = if from_shared {
                self.unplaced.pop_front()
            } else {
                engine.queue.pop_front()
            };
            let Some(task) = task_id.and_then(|id| self.tasks.get_mut(&id)) else {
                continue;
            };
            task.engine_id = engine_id;
            engine.active.insert(task.id);
            engine.send(hub_message::Kind::Assign(Assign {
                task_id: task.id,
                spec: Some(task.spec.clone()),
            }));
        }
    }

    /// The least loaded engine that has a free slot and a task it may run.
    fn next_engine_with_work(&self) -> Option<u32> {
        let shared_work = !self.unplaced.is_empty();
        self.engines
            .iter()
            .filter(|e| e.has_free_slot() && (shared_work || !e.queue.is_empty()))
            .min_by_key(|e| (e.load(), e.id))
            .map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use crate::hub::{Hub, Settings};
    use crate::tasklog::LogLimits;
    use crate::tasks::Submitter;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use warren_proto::v1::{
        AnyEngine, EngineMessage, ExecuteRequest, Hello, HubMessage, Targets, TaskFinished,
        TaskResult, TaskSpec, TaskState, engine_message, hub_message, targets, task_result,
        task_spec,
    };

    fn hub() -> std::sync::Arc<Hub> {
        Hub::new(Settings {
            hub_id: "test".into(),
            heartbeat: Duration::from_secs(1),
            log_limits: LogLimits {
                keep: 1 << 20,
                window: 1 << 20,
            },
        })
    }

    fn any_request() -> ExecuteRequest {
        ExecuteRequest {
            spec: Some(TaskSpec {
                command: Some(task_spec::Command::Script("true".into())),
                ..Default::default()
            }),
            targets: Some(Targets {
                selector: Some(targets::Selector::Any(AnyEngine {})),
            }),
        }
    }

    fn assigned(rx: &mut mpsc::UnboundedReceiver<Result<HubMessage, tonic::Status>>) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Ok(Ok(message)) = rx.try_recv() {
            if let Some(hub_message::Kind::Assign(assign)) = message.kind {
                ids.push(assign.task_id);
            }
        }
        ids
    }

    #[test]
    fn any_goes_to_the_least_loaded_engine_and_waits_for_free_slots() {
        let hub = hub();
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let hello = |uuid: &str, slots| Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: uuid.into(),
            slots,
            ..Default::default()
        };
        let (e1, conn1) = hub.register_engine(hello("one", 1), tx1).expect("register");
        let (e2, _) = hub.register_engine(hello("two", 2), tx2).expect("register");
        for _ in 0..5 {
            hub.submit(any_request(), Submitter::default())
                .expect("submit");
        }
        // Three slots in all: tasks 1..=3 start, 4 and 5 wait.
        let mut on_one = assigned(&mut rx1);
        let mut on_two = assigned(&mut rx2);
        assert_eq!(on_one.len() + on_two.len(), 3);
        assert_eq!(on_one.len(), 1);
        assert_eq!(hub.queue_status().unassigned, 2);
        assert_eq!(hub.get_task(on_one[0]).expect("task").engine_id, e1);
        assert_eq!(hub.get_task(on_two[0]).expect("task").engine_id, e2);

        // Finishing a task on engine one hands it the oldest waiting task.
        let finished = on_one.remove(0);
        let result = TaskResult {
            state: TaskState::Succeeded as i32,
            exit: Some(task_result::Exit::ExitCode(0)),
            ..Default::default()
        };
        let message = EngineMessage {
            kind: Some(engine_message::Kind::Finished(TaskFinished {
                task_id: finished,
                result: Some(result),
            })),
        };
        hub.engine_message(e1, conn1, message);
        assert_eq!(
            hub.get_task(finished).expect("task").state,
            TaskState::Succeeded as i32
        );
        on_one = assigned(&mut rx1);
        on_two.extend(assigned(&mut rx2));
        assert_eq!(on_one, vec![4]);
        assert_eq!(hub.queue_status().unassigned, 1);
    }
}
