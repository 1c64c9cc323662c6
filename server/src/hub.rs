//! The hub's shared state and the operations every service performs on it.
//!
//! One mutex guards engines, tasks and queues. It is never held across an `.await`, and every
//! operation under it is short (no I/O: messages to engines go through unbounded channels
//! whose size is bounded by slots and user actions, not by output).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tonic::Status;
use warren_proto::v1::{
    AbortReply, CancelTask, EngineInfo, ExecuteRequest, InterruptReply, ListTasksRequest,
    QueueStatusReply, ShutdownEngine, SignalTask, TaskInfo, TaskState, hub_message, targets,
};

use crate::registry::Registry;
use crate::tasklog::LogLimits;
use crate::tasks::{Submitter, Task};
use crate::validate;

/// What the hub was configured with that its operations need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The hub's id.
    pub hub_id: String,
    /// How often the hub and engines exchange heartbeats.
    pub heartbeat: Duration,
    /// How much output each task keeps.
    pub log_limits: LogLimits,
}

/// Everything behind the hub's lock.
#[derive(Debug, Default)]
pub struct State {
    /// Connected engines.
    pub engines: Registry,
    /// Every task, by id.
    pub tasks: BTreeMap<u64, Task>,
    /// Tasks for "any" engine waiting for a free slot, oldest first.
    pub unplaced: VecDeque<u64>,
    next_task_id: u64,
    /// Set once the hub has begun to stop: nothing new is accepted.
    pub stopping: bool,
}

/// How a stop was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// Keep running.
    None,
    /// Stop the hub; engines wait for a hub to come back.
    Hub,
    /// Stop the hub and tell every engine to exit.
    HubAndEngines,
}

/// The hub: state plus settings, shared by every service.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    settings: Settings,
    stop: watch::Sender<StopRequest>,
}

/// A status for a hub that is stopping.
pub fn stopping_status() -> Status {
    Status::unavailable("the hub is shutting down; start it again and retry")
}

impl Hub {
    /// A hub with no engines and no tasks.
    pub fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            settings,
            stop: watch::Sender::new(StopRequest::None),
        })
    }

    /// Locks the state. A panic elsewhere while it was held leaves it usable: every
    /// operation keeps it consistent at each step.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hub's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Asks the hub to stop (from `Control.Shutdown`).
    pub fn request_stop(&self, request: StopRequest) {
        self.stop.send_if_modified(|current| {
            let upgrade = *current == StopRequest::None
                || (*current == StopRequest::Hub && request == StopRequest::HubAndEngines);
            if upgrade {
                *current = request;
            }
            upgrade
        });
    }

    /// Resolves once a stop has been asked for, with what was asked.
    pub async fn stop_requested(&self) -> StopRequest {
        let mut rx = self.stop.subscribe();
        match rx.wait_for(|r| *r != StopRequest::None).await {
            Ok(request) => *request,
            Err(_) => StopRequest::Hub,
        }
    }

    /// Submits a request's tasks, one per selected engine, and starts what can start.
    pub fn submit(
        &self,
        request: ExecuteRequest,
        submitter: Submitter,
    ) -> Result<Vec<u64>, Status> {
        let spec = validate::spec(request.spec)?;
        let mut state = self.lock();
        if state.stopping {
            return Err(stopping_status());
        }
        let placements = state.placements(request.targets.and_then(|t| t.selector))?;
        let mut ids = Vec::with_capacity(placements.len());
        for pinned in placements {
            state.next_task_id += 1;
            let id = state.next_task_id;
            let task = Task::new(
                id,
                spec.clone(),
                pinned,
                submitter,
                self.settings.log_limits,
            );
            state.tasks.insert(id, task);
            match pinned.and_then(|e| state.engines.get_mut(e)) {
                Some(engine) => engine.queue.push_back(id),
                None => state.unplaced.push_back(id),
            }
            ids.push(id);
        }
        tracing::debug!(?ids, uid = submitter.uid, pid = submitter.pid, "submitted");
        state.dispatch();
        Ok(ids)
    }

    /// Every connected engine.
    pub fn list_engines(&self) -> Vec<EngineInfo> {
        self.lock().engines.iter().map(|e| e.info()).collect()
    }

    /// One task.
    pub fn get_task(&self, id: u64) -> Result<TaskInfo, Status> {
        let state = self.lock();
        state.task(id).map(Task::info)
    }

    /// Tasks matching the filter, newest first.
    pub fn list_tasks(&self, request: &ListTasksRequest) -> Vec<TaskInfo> {
        let limit = match request.limit {
            0 => 100,
            n => n as usize,
        };
        let state = self.lock();
        state
            .tasks
            .values()
            .rev()
            .filter(|t| request.states.is_empty() || request.states.contains(&(t.state as i32)))
            .filter(|t| request.engine_id == 0 || t.engine_id == request.engine_id)
            .take(limit)
            .map(Task::info)
            .collect()
    }

    /// Queue lengths, overall and per engine.
    pub fn queue_status(&self) -> QueueStatusReply {
        let state = self.lock();
        QueueStatusReply {
            unassigned: state.unplaced.len() as u32,
            engines: state
                .engines
                .iter()
                .map(|e| warren_proto::v1::EngineQueue {
                    engine_id: e.id,
                    queued: e.queue.len() as u32,
                    running: e.active.len() as u32,
                    slots: e.slots() as u32,
                })
                .collect(),
        }
    }

    /// Aborts tasks: queued ones end at once, running ones are terminated by their engine.
    pub fn abort(&self, ids: &[u64], by: Submitter) -> Result<AbortReply, Status> {
        let mut state = self.lock();
        state.check_known(ids)?;
        let mut reply = AbortReply::default();
        for &id in ids {
            let Some(task) = state.tasks.get(&id) else {
                continue;
            };
            if task.state.is_final() {
                reply.already_final.push(id);
                continue;
            }
            let engine_id = task.engine_id;
            let active = state
                .engines
                .get(engine_id)
                .is_some_and(|e| e.active.contains(&id));
            if active {
                if let Some(engine) = state.engines.get(engine_id) {
                    engine.send(hub_message::Kind::Cancel(CancelTask { task_id: id }));
                }
                reply.terminating.push(id);
            } else {
                state.unqueue(id);
                if let Some(task) = state.tasks.get_mut(&id) {
                    task.end(
                        TaskState::Aborted,
                        format!("aborted by uid {} before it started", by.uid),
                    );
                }
                reply.aborted.push(id);
            }
        }
        Ok(reply)
    }

    /// Sends a signal to running tasks' process groups.
    pub fn interrupt(&self, ids: &[u64], signal: i32) -> Result<InterruptReply, Status> {
        let signal = validate::signal(signal)?;
        let state = self.lock();
        state.check_known(ids)?;
        let mut reply = InterruptReply::default();
        for &id in ids {
            let engine = state
                .tasks
                .get(&id)
                .and_then(|t| state.engines.get(t.engine_id))
                .filter(|e| e.active.contains(&id));
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
        Ok(reply)
    }

    /// Tells engines to exit (all of them if `ids` is empty).
    pub fn shutdown_engines(&self, ids: &[u32]) -> Result<Vec<u32>, Status> {
        let state = self.lock();
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
        for &id in &ids {
            if let Some(engine) = state.engines.get(id) {
                engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                    exit: true,
                    reason: "asked to stop by Control.ShutdownEngines".into(),
                }));
            }
        }
        Ok(ids)
    }

    /// Stops accepting work, ends every live task and lets engines go.
    pub fn stop(&self, engines_exit: bool) {
        let mut state = self.lock();
        if state.stopping {
            return;
        }
        state.stopping = true;
        let reason = if engines_exit {
            "the hub is shutting down and asked its engines to exit"
        } else {
            "the hub is shutting down"
        };
        for engine in state.engines.drain() {
            engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                exit: engines_exit,
                reason: reason.into(),
            }));
            state.settle_departed(engine, "was let go as the hub shut down");
        }
        let unplaced: Vec<u64> = state.unplaced.drain(..).collect();
        for id in unplaced {
            if let Some(task) = state.tasks.get_mut(&id) {
                task.end(
                    TaskState::Aborted,
                    "the hub shut down before the task started".into(),
                );
            }
        }
    }
}

impl State {
    /// The task with this id, or NOT_FOUND.
    pub fn task(&self, id: u64) -> Result<&Task, Status> {
        self.tasks
            .get(&id)
            .ok_or_else(|| unknown_task(id, self.next_task_id))
    }

    /// The task with this id to change, or NOT_FOUND.
    pub fn task_mut(&mut self, id: u64) -> Result<&mut Task, Status> {
        let newest = self.next_task_id;
        self.tasks
            .get_mut(&id)
            .ok_or_else(|| unknown_task(id, newest))
    }

    fn check_known(&self, ids: &[u64]) -> Result<(), Status> {
        if ids.is_empty() {
            return Err(Status::invalid_argument("no task ids given"));
        }
        for &id in ids {
            self.task(id)?;
        }
        Ok(())
    }

    /// Which engine each new task goes to (`None`: any), for a request's targets.
    fn placements(&self, selector: Option<targets::Selector>) -> Result<Vec<Option<u32>>, Status> {
        match selector {
            None | Some(targets::Selector::Any(_)) => Ok(vec![None]),
            Some(targets::Selector::All(_)) => {
                if self.engines.is_empty() {
                    return Err(Status::failed_precondition(
                        "no engines are registered, so `all` selects none; start one with `warren-engine`",
                    ));
                }
                Ok(self.engines.ids().into_iter().map(Some).collect())
            }
            Some(targets::Selector::Engines(list)) => {
                if list.ids.is_empty() {
                    return Err(Status::invalid_argument(
                        "targets.engines lists no engine ids; name at least one, or use `any` or `all`",
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for &id in &list.ids {
                    if !seen.insert(id) {
                        return Err(Status::invalid_argument(format!(
                            "engine {id} is listed twice in targets.engines"
                        )));
                    }
                    if self.engines.get(id).is_none() {
                        return Err(Status::not_found(format!(
                            "engine {id} is not registered; `warren engines` lists them"
                        )));
                    }
                }
                Ok(list.ids.iter().copied().map(Some).collect())
            }
        }
    }

    /// Takes a task out of whichever queue holds it.
    fn unqueue(&mut self, id: u64) {
        if let Some(pos) = self.unplaced.iter().position(|&t| t == id) {
            self.unplaced.remove(pos);
            return;
        }
        let engine_id = self.tasks.get(&id).map_or(0, |t| t.engine_id);
        if let Some(engine) = self.engines.get_mut(engine_id)
            && let Some(pos) = engine.queue.iter().position(|&t| t == id)
        {
            engine.queue.remove(pos);
        }
    }
}

fn unknown_task(id: u64, newest: u64) -> Status {
    if newest == 0 {
        Status::not_found(format!(
            "task {id} does not exist: this hub has no tasks yet"
        ))
    } else {
        Status::not_found(format!(
            "task {id} does not exist: this hub's tasks are numbered 1 to {newest}"
        ))
    }
}
