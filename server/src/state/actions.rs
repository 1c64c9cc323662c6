//! What clients ask of work already submitted: abort, interrupt, stop engines, wind down.

use std::time::Duration;
use tonic::Status;
use warren_proto::v1::{
    AbortReply, CancelTask, InterruptReply, ShutdownEngine, SignalTask, TaskState, hub_message,
};

use super::Hub;
use crate::state::task::Submitter;
use crate::validate;

impl Hub {
    /// Aborts tasks: queued ones end at once, running ones are terminated by their engine.
    pub async fn abort(&self, ids: &[u64], by: Submitter) -> Result<AbortReply, Status> {
        let mut reply = AbortReply::default();
        let mut unknown = Vec::new();
        {
            let mut state = self.lock();
            if ids.is_empty() {
                return Err(Status::invalid_argument("no task ids given"));
            }
            for &id in ids {
                let Some(task) = state.tasks.get(&id) else {
                    unknown.push(id);
                    continue;
                };
                if task.is_ending() {
                    reply.already_final.push(id);
                    continue;
                }
                let engine_id = task.row.engine_id;
                let attempt = task.row.attempt;
                let running_on = state
                    .engines
                    .get(engine_id)
                    .filter(|e| e.active.contains(&id));
                if let Some(engine) = running_on {
                    engine.send(hub_message::Kind::Cancel(CancelTask {
                        task_id: id,
                        discard: false,
                        attempt,
                    }));
                    reply.terminating.push(id);
                } else {
                    state.dequeue(id);
                    let store = state.store.clone();
                    if let Some(task) = state.tasks.get_mut(&id) {
                        task.end(
                            TaskState::Aborted,
                            format!("aborted by uid {} before it started", by.uid),
                            &store,
                        );
                    }
                    reply.aborted.push(id);
                }
            }
        }
        // Tasks not in memory have ended (or never were).
        for id in unknown {
            match self.get_task(id).await {
                Ok(_) => reply.already_final.push(id),
                Err(status) if status.code() == tonic::Code::NotFound => reply.not_found.push(id),
                Err(status) => return Err(status),
            }
        }
        // Aborted means aborted: answer once the ends are recorded.
        for &id in &reply.aborted {
            self.wait_until_ended(id).await;
        }
        Ok(reply)
    }

    /// Waits (a few seconds at most) until a task's end is committed and shown.
    async fn wait_until_ended(&self, id: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = {
                let state = self.lock();
                match state.tasks.get(&id) {
                    Some(task) if !task.state().is_final() => task.notify.clone().notified_owned(),
                    _ => return,
                }
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Sends a signal to running tasks' process groups.
    pub async fn interrupt(&self, ids: &[u64], signal: i32) -> Result<InterruptReply, Status> {
        let signal = validate::signal(signal)?;
        if ids.is_empty() {
            return Err(Status::invalid_argument("no task ids given"));
        }
        let mut reply = InterruptReply::default();
        let mut unknown = Vec::new();
        {
            let state = self.lock();
            for &id in ids {
                let Some(task) = state.tasks.get(&id) else {
                    unknown.push(id);
                    continue;
                };
                if task.is_ending() {
                    reply.already_final.push(id);
                    continue;
                }
                let engine = state
                    .engines
                    .get(task.row.engine_id)
                    .filter(|e| e.active.contains(&id) && task.state() == TaskState::Running);
                match engine {
                    Some(engine) => {
                        engine.send(hub_message::Kind::Signal(SignalTask {
                            task_id: id,
                            signal,
                        }));
                        reply.signalled.push(id);
                    }
                    None => reply.not_running.push(id),
                }
            }
        }
        // Tasks not in memory have ended (or never were).
        for id in unknown {
            match self.get_task(id).await {
                Ok(_) => reply.already_final.push(id),
                Err(status) if status.code() == tonic::Code::NotFound => reply.not_found.push(id),
                Err(status) => return Err(status),
            }
        }
        Ok(reply)
    }

    /// Tells engines to exit (all of them if `ids` is empty).
    pub fn shutdown_engines(&self, ids: &[u32]) -> Result<Vec<u32>, Status> {
        let mut state = self.lock();
        let ids = if ids.is_empty() {
            state.engines.ids()
        } else {
            for &id in ids {
                if state.engines.get(id).is_none() {
                    return Err(Status::not_found(format!(
                        "engine {id} is not registered; `warren engines` lists them"
                    )));
                }
            }
            ids.to_vec()
        };
        let reason = "asked to stop by Control.ShutdownEngines";
        for &id in &ids {
            if let Some(engine) = state.engines.get_mut(id) {
                engine.told_to_exit = Some(reason.into());
                engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                    exit: true,
                    reason: reason.into(),
                }));
            }
        }
        Ok(ids)
    }

    /// Stops taking work; with `engines_exit`, tells every engine to stop its tasks and exit
    /// and waits (bounded) for their ends to be recorded.
    pub async fn wind_down(&self, engines_exit: bool, grace: Duration) {
        {
            let mut state = self.lock();
            state.accepting = false;
            if engines_exit {
                let reason = "the hub is shutting down and asked its engines to exit";
                for id in state.engines.ids() {
                    if let Some(engine) = state.engines.get_mut(id) {
                        engine.told_to_exit = Some(reason.into());
                        engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                            exit: true,
                            reason: reason.into(),
                        }));
                    }
                }
            }
        }
        if engines_exit {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                let busy = self.lock().engines.iter().any(|e| !e.active.is_empty());
                if !busy {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Everything queued so far is committed once this read has run.
        let _ = self.store.query(|_| Ok(())).await;
    }
}
