//! Engines joining, working, leaving and coming back: what the hub does with each
//! registration stream.
//!
//! An engine that leaves is not written off at once: its tasks wait for it (for the liveness
//! timeout, or longer after a hub restart), because an engine keeps running its tasks while it
//! is away and reports them when it registers again. Tasks whose engine does not come back end
//! `lost`, or run again elsewhere if their request allowed retries.

use std::collections::HashSet;
use std::time::Instant;
use tonic::Status;
use warren_proto::v1::{
    Ack, CancelTask, EngineMessage, Hello, OutputChunk, TaskReport, TaskResult, TaskState, Welcome,
    engine_message, hub_message,
};
use warren_proto::{PROTOCOL_VERSION, check_protocol_version, now_us};

use crate::state::registry::EngineTx;
use crate::state::{Awaiting, Hub, State, stopping_status};
use crate::store::Op;
use crate::validate;

impl Hub {
    /// Accepts an engine's Hello: gives it its id (the old one if its uuid is known), takes
    /// back the tasks it still has, and gives it work.
    pub fn register_engine(&self, mut hello: Hello, tx: EngineTx) -> Result<(u32, u64), Status> {
        check_protocol_version("this engine", hello.protocol_version)
            .map_err(Status::failed_precondition)?;
        validate::hello(&hello)?;
        let mut state = self.lock();
        if !state.accepting {
            return Err(stopping_status());
        }
        let now = now_us();
        let (id, new) = state.engines.id_for(&hello.uuid, now);
        if state.engines.get(id).is_none()
            && state.engines.len() >= self.settings().limits.max_engines
        {
            return Err(Status::resource_exhausted(format!(
                "the hub already has {} engines (--max-engines); stop some first",
                state.engines.len()
            )));
        }
        state.store.send(Op::Engine {
            id,
            uuid: hello.uuid.clone(),
            hostname: hello.hostname.clone(),
            registered_us: now,
        });
        let reports = std::mem::take(&mut hello.tasks);
        let (hostname, pid) = (hello.hostname.clone(), hello.pid);
        let (connection, replaced) = state.engines.insert(id, hello, tx, now);
        if new {
            // Bounded: a stream of new uuids pushes the oldest idle records out.
            state.forget_engines(i64::MIN);
        }
        let mut left_behind: Vec<u64> = Vec::new();
        if let Some(old) = replaced {
            if let Some(reader) = old.reader {
                reader.abort();
            }
            left_behind.extend(old.active);
        }
        if let Some(engine) = state.engines.get(id) {
            engine.send(hub_message::Kind::Welcome(Welcome {
                engine_id: id,
                protocol_version: PROTOCOL_VERSION,
                heartbeat_interval_ms: self.settings().heartbeat.as_millis() as u32,
                hub_id: self.settings().hub_id.clone(),
                timeout_ms: self.settings().engine_timeout.as_millis() as u32,
            }));
        }
        tracing::info!(engine = id, %hostname, pid, tasks = reports.len(), "engine registered");
        state.reattach(id, reports, left_behind);
        state.dispatch();
        Ok((id, connection))
    }

    /// Handles one message from an engine's stream. `budget` bytes of the output budget were
    /// taken for it; returns whether the hub holds them now (to release when committed).
    pub fn engine_message(
        &self,
        engine_id: u32,
        connection: u64,
        message: EngineMessage,
        budget: u64,
    ) -> bool {
        let mut state = self.lock();
        let store = state.store.clone();
        let Some(engine) = state.engines.current(engine_id, connection) else {
            return false;
        };
        engine.last_seen = Instant::now();
        let hostname = engine.hello.hostname.clone();
        match message.kind {
            Some(engine_message::Kind::Started(started)) => {
                if let Some(task) = state.active_task(engine_id, started.task_id, started.attempt)
                    && task.row.state != TaskState::Running
                {
                    // The engine has the task's stdin now.
                    task.input = None;
                    task.row.started_us = started.started_us;
                    let reason = format!("pid {} on {hostname}", started.pid);
                    task.set_state(TaskState::Running, reason, &store);
                }
                false
            }
            Some(engine_message::Kind::Output(output)) => {
                match state.active_task(engine_id, output.task_id, output.attempt) {
                    // A resent chunk the hub already has.
                    Some(task) if output.chunk_seq <= task.chunk_received => false,
                    Some(task) => {
                        let chunk = OutputChunk {
                            stream: output.stream,
                            data: output.data,
                        };
                        task.record_output(chunk, output.chunk_seq, budget, &store);
                        true
                    }
                    None => false,
                }
            }
            Some(engine_message::Kind::Finished(finished)) => {
                let result = checked_result(finished.result);
                if let Some(task) = state.active_task(engine_id, finished.task_id, finished.attempt)
                {
                    if finished.chunks > task.chunk_received {
                        tracing::warn!(
                            task = finished.task_id,
                            missing = finished.chunks - task.chunk_received,
                            "an engine reported a task's end before all of its output"
                        );
                    }
                    task.end_attempt(result.state().label(), &store);
                    task.finish(result, &store);
                    if let Some(engine) = state.engines.get_mut(engine_id) {
                        engine.active.remove(&finished.task_id);
                    }
                    state.dispatch();
                }
                false
            }
            Some(engine_message::Kind::Heartbeat(_)) => false,
            Some(engine_message::Kind::Hello(_)) | None => {
                tracing::warn!(
                    engine = engine_id,
                    "ignored an unexpected message from an engine"
                );
                false
            }
        }
    }

    /// The engine's stream ended: its tasks wait (for the liveness timeout) for it to return.
    pub fn engine_gone(&self, engine_id: u32, connection: u64, why: &str) {
        let mut state = self.lock();
        if let Some(engine) = state.engines.remove(engine_id, connection) {
            match &engine.told_to_exit {
                Some(reason) => {
                    tracing::info!(engine = engine_id, %reason, "engine stopped, as it was asked to");
                }
                None => tracing::warn!(engine = engine_id, why, "engine left"),
            }
            let deadline = Instant::now() + self.settings().engine_timeout;
            state.await_engine(engine_id, engine.describe(), engine.active, deadline, why);
        }
    }
}

impl State {
    /// Forgets engines that registered before `before_us` or are past `--max-engine-records`,
    /// keeping those that are connected or that tasks wait for, here and in the database.
    pub fn forget_engines(&mut self, before_us: i64) -> usize {
        let keep = self.settings.limits.max_engine_records;
        let (awaiting, queues) = (&self.awaiting, &self.queues);
        let forgotten = self.engines.forget(before_us, keep, |id| {
            awaiting.get(&id).is_some_and(|a| !a.tasks.is_empty())
                || queues.get(&id).is_some_and(|q| !q.is_empty())
        });
        let count = forgotten.len();
        if count > 0 {
            self.store.send(Op::ForgetEngines(forgotten));
        }
        count
    }

    /// The task, if it is active on this engine in this attempt and not ending.
    fn active_task(
        &mut self,
        engine_id: u32,
        task_id: u64,
        attempt: u32,
    ) -> Option<&mut crate::state::task::Task> {
        let active = self
            .engines
            .get(engine_id)
            .is_some_and(|e| e.active.contains(&task_id));
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

    /// Makes an engine's tasks wait for it until `deadline`.
    pub fn await_engine(
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
    fn reattach(&mut self, engine_id: u32, reports: Vec<TaskReport>, left_behind: Vec<u64>) {
        let store = self.store.clone();
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
                    engine.active.insert(report.task_id);
                    // The engine resends everything after what the database has.
                    task.chunk_received = task.chunk_committed;
                    engine.send(hub_message::Kind::Ack(Ack {
                        task_id: report.task_id,
                        attempt: report.attempt,
                        chunk_seq: task.chunk_committed,
                        finished: false,
                    }));
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
            if started {
                self.settle_task(task_id, engine_id, &who, "came back without it");
            } else if let Some(task) = self.tasks.get_mut(&task_id) {
                if task.is_ending() || task.row.attempt == 0 {
                    continue;
                }
                task.end_attempt("the engine never had it", &store);
                self.enqueue(task_id);
            }
        }
    }

    /// Settles the tasks of engines that have not come back in time.
    pub fn settle_overdue(&mut self, now: Instant) {
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
            for task_id in awaiting.tasks {
                self.settle_task(task_id, engine_id, &awaiting.who, &awaiting.why);
            }
            // Tasks queued for it alone can't run.
            for task_id in self.queues.remove(&engine_id).unwrap_or_default() {
                let pid = self.tasks.get(&task_id).map(|t| t.row.submitter.pid);
                if let Some(pid) = pid {
                    self.dequeued(pid);
                }
                let store = self.store.clone();
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.end(
                        TaskState::Failed,
                        format!(
                            "{} {} before the task started; submit it again",
                            awaiting.who, awaiting.why
                        ),
                        &store,
                    );
                }
            }
        }
        self.dispatch();
    }

    /// Ends, or retries, one task whose engine is gone.
    fn settle_task(&mut self, task_id: u64, engine_id: u32, who: &str, why: &str) {
        let store = self.store.clone();
        let max_deaths = self.settings.max_engine_deaths;
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if task.is_ending() || task.row.engine_id != engine_id {
            return;
        }
        if task.row.state != TaskState::Running {
            // Placed, but not known to have started: no retry is used up, but the engine is
            // avoided and counted, so a task that kills engines before they can say so still
            // stops being placed.
            let before = format!("{who} {why} before the task was known to start");
            task.end_attempt(&before, &store);
            task.avoid.push(engine_id);
            task.unconfirmed_losses += 1;
            if task.row.pinned.is_some() {
                task.end(
                    TaskState::Failed,
                    format!("{before}; submit it again"),
                    &store,
                );
            } else if task.unconfirmed_losses + task.row.engine_deaths >= max_deaths {
                let why = format!(
                    "{before}; not placed again: {} engines have died holding it (--max-engine-deaths {max_deaths})",
                    task.unconfirmed_losses + task.row.engine_deaths
                );
                task.end(TaskState::Lost, why, &store);
            } else {
                task.row.engine_id = 0;
                task.set_state(
                    TaskState::Queued,
                    format!("{before}; placing it elsewhere"),
                    &store,
                );
                self.enqueue(task_id);
            }
            return;
        }
        task.row.engine_deaths += 1;
        task.avoid.push(engine_id);
        let deaths = task.row.engine_deaths;
        let lost = format!("{who} {why} while the task was running");
        task.end_attempt(&lost, &store);
        if task.row.pinned.is_some() || deaths > task.row.retries {
            task.end(TaskState::Lost, lost, &store);
        } else if deaths + task.unconfirmed_losses >= max_deaths {
            let total = deaths + task.unconfirmed_losses;
            task.end(
                TaskState::Lost,
                format!(
                    "{lost}; not retried again: {total} engines have died holding it (--max-engine-deaths {max_deaths})"
                ),
                &store,
            );
        } else {
            let reason = format!(
                "{lost}; retrying elsewhere (retry {deaths} of {})",
                task.row.retries
            );
            task.row.engine_id = 0;
            task.set_state(TaskState::Queued, reason, &store);
            self.enqueue(task_id);
        }
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
