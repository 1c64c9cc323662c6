//! Engines joining, working and leaving: what the hub does with each registration stream.

use tonic::Status;
use warren_proto::v1::{
    EngineMessage, Heartbeat, Hello, OutputChunk, TaskResult, TaskState, Welcome, engine_message,
    hub_message, task_event,
};
use warren_proto::{PROTOCOL_VERSION, check_protocol_version, now_us};

use crate::hub::{Hub, State, stopping_status};
use crate::registry::{Engine, EngineTx};
use crate::validate;

impl Hub {
    /// Accepts an engine's Hello: gives it an id (its old one if its uuid is known) and work.
    pub fn register_engine(&self, hello: Hello, tx: EngineTx) -> Result<(u32, u64), Status> {
        check_protocol_version("this engine", hello.protocol_version)
            .map_err(Status::failed_precondition)?;
        validate::hello(&hello)?;
        let mut state = self.lock();
        if state.stopping {
            return Err(stopping_status());
        }
        let (hostname, pid) = (hello.hostname.clone(), hello.pid);
        let (id, connection, replaced) = state.engines.register(hello, tx, now_us());
        if let Some(old) = replaced {
            state.settle_departed(old, "registered again on a new stream");
        }
        if let Some(engine) = state.engines.get(id) {
            engine.send(hub_message::Kind::Welcome(Welcome {
                engine_id: id,
                protocol_version: PROTOCOL_VERSION,
                heartbeat_interval_ms: self.settings().heartbeat.as_millis() as u32,
                hub_id: self.settings().hub_id.clone(),
            }));
        }
        tracing::info!(engine = id, %hostname, pid, "engine registered");
        state.dispatch();
        Ok((id, connection))
    }

    /// Handles one message from an engine's stream.
    pub fn engine_message(&self, engine_id: u32, connection: u64, message: EngineMessage) {
        let mut state = self.lock();
        let Some(engine) = state.engines.current(engine_id, connection) else {
            return;
        };
        engine.last_seen = std::time::Instant::now();
        let hostname = engine.hello.hostname.clone();
        match message.kind {
            Some(engine_message::Kind::Started(started)) => {
                if let Some(task) = state.active_task(engine_id, started.task_id) {
                    task.started_us = started.started_us;
                    task.set_state(
                        TaskState::Running,
                        format!("pid {} on {hostname}", started.pid),
                    );
                }
            }
            Some(engine_message::Kind::Output(output)) => {
                if let Some(task) = state.active_task(engine_id, output.task_id) {
                    task.record(task_event::Kind::Output(OutputChunk {
                        stream: output.stream,
                        data: output.data,
                    }));
                }
            }
            Some(engine_message::Kind::Finished(finished)) => {
                let result = checked_result(finished.result);
                if let Some(task) = state.active_task(engine_id, finished.task_id) {
                    task.finish(result);
                    if let Some(engine) = state.engines.get_mut(engine_id) {
                        engine.active.remove(&finished.task_id);
                    }
                    state.dispatch();
                }
            }
            Some(engine_message::Kind::Heartbeat(_)) => {}
            Some(engine_message::Kind::Hello(_)) | None => {
                tracing::warn!(
                    engine = engine_id,
                    "ignored an unexpected message from engine"
                );
            }
        }
    }

    /// The engine's stream ended: its running tasks are lost, its queued ones fail.
    pub fn engine_gone(&self, engine_id: u32, connection: u64, why: &str) {
        let mut state = self.lock();
        if let Some(engine) = state.engines.remove(engine_id, connection) {
            tracing::warn!(engine = engine_id, why, "engine left");
            state.settle_departed(engine, why);
            state.dispatch();
        }
    }

    /// Sends every engine a heartbeat.
    pub fn heartbeat_engines(&self) {
        let state = self.lock();
        for engine in state.engines.iter() {
            engine.send(hub_message::Kind::Heartbeat(Heartbeat {
                time_us: now_us(),
            }));
        }
    }
}

impl State {
    /// The task, if it is assigned to this engine and not finished.
    fn active_task(&mut self, engine_id: u32, task_id: u64) -> Option<&mut crate::tasks::Task> {
        let active = self
            .engines
            .get(engine_id)
            .is_some_and(|e| e.active.contains(&task_id));
        if !active {
            tracing::debug!(
                engine = engine_id,
                task = task_id,
                "ignored news of a task not active there"
            );
            return None;
        }
        self.tasks.get_mut(&task_id)
    }

    /// Ends the work of an engine that is gone.
    pub fn settle_departed(&mut self, engine: Engine, why: &str) {
        let who = engine.describe();
        for id in engine.active {
            if let Some(task) = self.tasks.get_mut(&id) {
                task.end(
                    TaskState::Lost,
                    format!("{who} {why} while the task was running"),
                );
            }
        }
        for id in engine.queue {
            if let Some(task) = self.tasks.get_mut(&id) {
                task.end(
                    TaskState::Failed,
                    format!("{who} {why} before the task started; submit it again"),
                );
            }
        }
    }
}

/// An engine's result, made final if the engine sent something that isn't.
fn checked_result(result: Option<TaskResult>) -> TaskResult {
    match result {
        Some(result) if result.state().is_final() => result,
        other => TaskResult {
            state: TaskState::Failed as i32,
            error: "the engine reported the task's end without a final state".into(),
            finished_us: now_us(),
            ..other.unwrap_or_default()
        },
    }
}
