//! Engines joining, working and leaving: what the hub does with each registration stream.
//!
//! An engine that leaves is not written off at once: its tasks wait for it (see `settle`),
//! because an engine keeps running its tasks while it is away and reports them when it
//! registers again.

use std::time::Instant;
use tokio::task::AbortHandle;
use warren_proto::v1::{
    EngineMessage, Hello, OutputChunk, TaskResult, TaskState, Welcome, engine_message, hub_message,
};
use warren_proto::{PROTOCOL_VERSION, check_protocol_version, now_us};

use super::registry::EngineTx;
use super::task::Task;
use super::{Hub, State};
use crate::error::HubError;
use crate::store::Op;
use crate::validate;

impl Hub {
    /// Accepts an engine's Hello: gives it its id (the old one if its uuid is known), takes
    /// back the tasks it still has, and gives it work. Returns its id and connection number.
    pub(crate) fn register_engine(
        &self,
        mut hello: Hello,
        tx: EngineTx,
    ) -> Result<(u32, u64), HubError> {
        check_protocol_version("this engine", hello.protocol_version)
            .map_err(HubError::Precondition)?;
        validate::hello(&hello)?;
        let settings = &self.settings;
        let now = self.clock.now();
        self.update(|state| {
            if !state.accepting {
                return Err(HubError::Stopping);
            }
            let now_us = now_us();
            let (id, new) = state.engines.id_for(&hello.uuid, now_us);
            if state.engines.get(id).is_none() && state.engines.len() >= settings.limits.max_engines
            {
                return Err(HubError::exhausted(format!(
                    "the hub already has {} engines (--max-engines); stop some first",
                    state.engines.len()
                )));
            }
            state.write([Op::Engine {
                id,
                uuid: hello.uuid.clone(),
                hostname: hello.hostname.clone(),
                registered_us: now_us,
            }]);
            let reports = std::mem::take(&mut hello.tasks);
            let session_reports = std::mem::take(&mut hello.sessions);
            let (hostname, pid) = (hello.hostname.clone(), hello.pid);
            let (connection, replaced) = state.engines.insert(id, hello, tx, now_us, now);
            if new {
                // Bounded: a stream of new uuids pushes the oldest idle records out.
                state.forget_engines(i64::MIN);
            }
            let mut left_behind: Vec<u64> = Vec::new();
            if let Some(old) = replaced {
                old.stop_reader();
                left_behind.extend(old.into_active());
            }
            if let Some(engine) = state.engines.get(id) {
                engine.send(hub_message::Kind::Welcome(Welcome {
                    engine_id: id,
                    protocol_version: PROTOCOL_VERSION,
                    heartbeat_interval_ms: settings.heartbeat.as_millis() as u32,
                    hub_id: settings.hub_id.clone(),
                    timeout_ms: settings.engine_timeout.as_millis() as u32,
                }));
            }
            tracing::info!(engine = id, %hostname, pid, tasks = reports.len(), "engine registered");
            state.reattach(id, reports, left_behind);
            state.reattach_sessions(id, session_reports);
            state.resend_stdin_of(id);
            state.dispatch();
            Ok((id, connection))
        })
    }

    /// Notes the task reading an engine's stream, to stop it if the engine is written off.
    pub(crate) fn engine_reader(&self, engine_id: u32, connection: u64, reader: AbortHandle) {
        self.update(|state| {
            if let Some(engine) = state.engines.current(engine_id, connection) {
                engine.reader = Some(reader);
            }
        });
    }

    /// Handles one message from an engine's stream. Output first takes room in the output
    /// budget for its bytes: when the database falls behind, the hub stops reading engines'
    /// streams instead of growing. The room is given back once the output is committed.
    pub(crate) async fn receive(&self, engine_id: u32, connection: u64, message: EngineMessage) {
        let wanted = match &message.kind {
            Some(engine_message::Kind::Output(output)) => {
                (output.data.len().max(1)).min(self.settings.limits.output_in_flight) as u32
            }
            // The stdin it acknowledges is recorded like output.
            Some(engine_message::Kind::StdinAck(ack)) => {
                self.view(|state| state.stdin_to_record(ack))
                    .min(self.settings.limits.output_in_flight as u64) as u32
            }
            _ => 0,
        };
        if wanted > 0
            && let Ok(permit) = self.output_budget.clone().acquire_many_owned(wanted).await
        {
            permit.forget();
        }
        let held = self.engine_message(engine_id, connection, message, u64::from(wanted));
        if !held && wanted > 0 {
            self.output_budget.add_permits(wanted as usize);
        }
    }

    /// Handles one message from an engine's stream. `budget` bytes of the output budget were
    /// taken for it; returns whether the hub holds them now (to release when committed).
    pub(crate) fn engine_message(
        &self,
        engine_id: u32,
        connection: u64,
        message: EngineMessage,
        budget: u64,
    ) -> bool {
        let now = self.clock.now();
        self.update(|state| state.engine_message(engine_id, connection, message, budget, now))
    }

    /// The engine's stream ended: its tasks wait (for the liveness timeout) for it to return.
    pub(crate) fn engine_gone(&self, engine_id: u32, connection: u64, why: &str) {
        let deadline = self.clock.now() + self.settings.engine_timeout;
        self.update(|state| {
            let Some(engine) = state.engines.remove(engine_id, connection) else {
                return;
            };
            match &engine.told_to_exit {
                Some(reason) => {
                    tracing::info!(engine = engine_id, %reason, "engine stopped, as it was asked to");
                }
                None => tracing::warn!(engine = engine_id, why, "engine left"),
            }
            state.fail_transfers(Some(engine_id), "the engine left");
            let who = engine.describe();
            state.await_engine(engine_id, who, engine.into_active(), deadline, why);
        });
    }
}

impl State {
    /// One message from an engine, heard at `now`; see [`Hub::engine_message`].
    fn engine_message(
        &mut self,
        engine_id: u32,
        connection: u64,
        message: EngineMessage,
        budget: u64,
        now: Instant,
    ) -> bool {
        let Some(engine) = self.engines.current(engine_id, connection) else {
            return false;
        };
        engine.last_seen = now;
        let hostname = engine.hello.hostname.clone();
        match message.kind {
            Some(engine_message::Kind::Started(started)) => {
                if let Some(task) = self.active_task(engine_id, started.task_id, started.attempt)
                    && task.row.state != TaskState::Running
                {
                    // The engine has the task's stdin now.
                    task.input = None;
                    task.row.started_us = started.started_us;
                    let reason = format!("pid {} on {hostname}", started.pid);
                    let writes = task.set_state(TaskState::Running, reason);
                    self.write(writes);
                }
                false
            }
            Some(engine_message::Kind::Output(output)) => {
                match self.active_task(engine_id, output.task_id, output.attempt) {
                    // A resent chunk the hub already has.
                    Some(task) if output.chunk_seq <= task.chunk_received => false,
                    Some(task) => {
                        let chunk = OutputChunk {
                            stream: output.stream,
                            data: output.data,
                        };
                        let write = task.record_output(chunk, output.chunk_seq, budget);
                        self.write([write]);
                        true
                    }
                    None => false,
                }
            }
            Some(engine_message::Kind::Finished(finished)) => {
                let result = checked_result(finished.result);
                if let Some(task) = self.active_task(engine_id, finished.task_id, finished.attempt)
                {
                    if finished.chunks > task.chunk_received {
                        tracing::warn!(
                            task = finished.task_id,
                            missing = finished.chunks - task.chunk_received,
                            "an engine reported a task's end before all of its output"
                        );
                    }
                    let ended = task.end_attempt(result.state().label());
                    let finish = task.finish(result);
                    self.write(ended.into_iter().chain(finish));
                    self.engines.release(engine_id, finished.task_id);
                    self.cell_ended(finished.task_id);
                    self.dispatch();
                }
                false
            }
            Some(engine_message::Kind::SessionStarted(started)) => {
                self.session_started(engine_id, started);
                false
            }
            Some(engine_message::Kind::SessionEnded(ended)) => {
                self.session_ended(engine_id, ended);
                false
            }
            Some(engine_message::Kind::StdinAck(ack)) => {
                match self.active_task(engine_id, ack.task_id, ack.attempt) {
                    Some(task) => {
                        let (writes, held) = task.stdin_acked(&ack, budget);
                        self.write(writes);
                        held
                    }
                    None => false,
                }
            }
            Some(engine_message::Kind::Heartbeat(_)) => false,
            Some(
                kind @ (engine_message::Kind::FileData(_)
                | engine_message::Kind::FileCredit(_)
                | engine_message::Kind::FileDone(_)),
            ) => {
                self.transfer_message(engine_id, connection, kind);
                false
            }
            Some(engine_message::Kind::Goodbye(goodbye)) => {
                self.engine_said_goodbye(engine_id, connection, goodbye.reason, now);
                false
            }
            Some(engine_message::Kind::Hello(_)) | None => {
                tracing::warn!(
                    engine = engine_id,
                    "ignored an unexpected message from an engine"
                );
                false
            }
        }
    }

    /// Forgets engines that registered before `before_us` or are past `--max-engine-records`,
    /// keeping those that are connected or that tasks wait for, here and in the database.
    pub(super) fn forget_engines(&mut self, before_us: i64) -> usize {
        let keep = self.settings.limits.max_engine_records;
        let (awaiting, queues) = (&self.awaiting, &self.queues);
        let forgotten = self.engines.forget(before_us, keep, |id| {
            awaiting.get(&id).is_some_and(|a| !a.tasks.is_empty())
                || queues.get(&id).is_some_and(|q| !q.is_empty())
        });
        let count = forgotten.len();
        if count > 0 {
            self.write([Op::ForgetEngines(forgotten)]);
        }
        count
    }

    /// The task, if it is active on this engine in this attempt and not ending.
    fn active_task(&mut self, engine_id: u32, task_id: u64, attempt: u32) -> Option<&mut Task> {
        let active = self.engines.get(engine_id).is_some_and(|e| e.runs(task_id));
        let task = self.tasks.get_mut(&task_id)?;
        if !active || task.row.attempt != attempt || task.is_ending() {
            tracing::debug!(
                engine = engine_id,
                task = task_id,
                attempt,
                "ignored news of a task not active there"
            );
            return None;
        }
        Some(task)
    }
}

/// An engine's result, made final if the engine sent something that isn't.
fn checked_result(result: Option<TaskResult>) -> TaskResult {
    match result {
        Some(mut result) if result.state().is_final() => {
            validate::engine_error(&mut result.error);
            result
        }
        other => TaskResult {
            state: TaskState::Failed as i32,
            error: "the engine reported the task's end without a final state".into(),
            finished_us: now_us(),
            ..other.unwrap_or_default()
        },
    }
}
