//! The hub's shared state and the operations the services perform on it.
//!
//! One mutex guards engines, tasks and queues. It is never held across an `.await`, and
//! nothing under it waits for I/O: messages to engines go through unbounded channels (bounded
//! in practice by slots and by user actions), and changes to the database are queued for the
//! store's writer thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tonic::Status;
use warren_proto::v1::{
    AbortReply, CancelTask, EngineInfo, ExecuteRequest, InterruptReply, QueueStatusReply,
    ShutdownEngine, SignalTask, TaskInfo, TaskState, hub_message, targets,
};

use crate::registry::Registry;
use crate::store::{Recovered, Store};
use crate::tasklog::LogLimits;
use crate::tasks::{NewTask, Submitter, Task};
use crate::validate;

/// Bounds on what clients and engines may make the hub hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tasks waiting for an engine, in all.
    pub max_queued: usize,
    /// Tasks waiting for an engine, per submitting process.
    pub max_queued_per_client: usize,
    /// Engines registered at once.
    pub max_engines: usize,
    /// Followers of one task at once.
    pub max_followers_per_task: usize,
    /// Follow streams one client process may have open.
    pub max_streams_per_client: usize,
    /// Output bytes received from engines and not yet committed.
    pub output_in_flight: usize,
}

/// What the hub was configured with that its operations need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The hub's id.
    pub hub_id: String,
    /// How often the hub and engines exchange heartbeats.
    pub heartbeat: Duration,
    /// Silence after which an engine is declared dead.
    pub engine_timeout: Duration,
    /// How long tasks wait for their engine after a hub restart.
    pub reattach_grace: Duration,
    /// How much output each task keeps and holds.
    pub log_limits: LogLimits,
    /// Engine deaths after which a task is not retried.
    pub max_engine_deaths: u32,
    /// Bounds.
    pub limits: Limits,
}

impl Settings {
    /// Small settings for tests and benchmarks that embed a hub.
    pub fn small(hub_id: &str) -> Self {
        Self {
            hub_id: hub_id.into(),
            heartbeat: Duration::from_secs(1),
            engine_timeout: Duration::from_secs(3),
            reattach_grace: Duration::from_secs(3),
            log_limits: LogLimits {
                keep: 1 << 20,
                window: 1 << 20,
            },
            max_engine_deaths: 3,
            limits: Limits {
                max_queued: 1000,
                max_queued_per_client: 1000,
                max_engines: 100,
                max_followers_per_task: 10,
                max_streams_per_client: 10,
                output_in_flight: 1 << 20,
            },
        }
    }
}

/// Tasks whose engine is away, and until when they wait for it.
#[derive(Debug)]
pub struct Awaiting {
    /// When they are given up.
    pub deadline: Instant,
    /// The tasks (assigned to it, or queued for it).
    pub tasks: Vec<u64>,
    /// What happened to the engine, for messages.
    pub why: String,
    /// How the engine was known, for messages.
    pub who: String,
}

/// Everything behind the hub's lock.
#[derive(Debug)]
pub struct State {
    /// The database.
    pub store: Store,
    /// The settings.
    pub settings: Arc<Settings>,
    /// Connected engines.
    pub engines: Registry,
    /// Live tasks (and ended ones still followed), by id.
    pub tasks: BTreeMap<u64, Task>,
    /// Tasks for any engine waiting for a slot, oldest first.
    pub unplaced: VecDeque<u64>,
    /// Tasks for one named engine waiting for a slot there, oldest first.
    pub queues: HashMap<u32, VecDeque<u64>>,
    /// Tasks whose engine is away, by engine id.
    pub awaiting: HashMap<u32, Awaiting>,
    /// Waiting tasks per submitting process.
    pub queued_by_client: HashMap<u32, usize>,
    /// Open follow streams per client process.
    pub streams_by_client: HashMap<u32, usize>,
    pub(crate) next_task_id: u64,
    /// Cleared when the hub begins to stop: no new work is taken.
    pub accepting: bool,
    /// Set when the hub stops: follow streams end.
    pub stopping: bool,
}

/// The locked state; releasing it hands the changes made meanwhile to the database writer.
pub struct StateGuard<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.0.store.flush();
    }
}

/// How a stop was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// Keep running.
    None,
    /// Stop the hub; engines keep their tasks and wait for a hub to come back.
    Hub,
    /// Stop the hub and tell every engine to stop its tasks and exit.
    HubAndEngines,
}

/// The hub: state plus settings, shared by every service.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    settings: Arc<Settings>,
    store: Store,
    stop: watch::Sender<StopRequest>,
    /// Output bytes the hub may hold before it stops reading engines' streams.
    pub output_budget: Arc<Semaphore>,
}

/// A status for a hub that is stopping.
pub fn stopping_status() -> Status {
    Status::unavailable("the hub is shutting down; start it again and retry")
}

impl Hub {
    /// A hub carrying on from what the database recovered.
    pub fn new(settings: Settings, store: Store, recovered: Recovered) -> Arc<Self> {
        let settings = Arc::new(settings);
        let mut state = State {
            store: store.clone(),
            settings: settings.clone(),
            engines: Registry::remembering(recovered.engines),
            tasks: BTreeMap::new(),
            unplaced: VecDeque::new(),
            queues: HashMap::new(),
            awaiting: HashMap::new(),
            queued_by_client: HashMap::new(),
            streams_by_client: HashMap::new(),
            next_task_id: recovered.next_task_id.saturating_sub(1),
            accepting: true,
            stopping: false,
        };
        state.resume(recovered.live);
        Arc::new(Self {
            state: Mutex::new(state),
            output_budget: Arc::new(Semaphore::new(settings.limits.output_in_flight)),
            settings,
            store,
            stop: watch::Sender::new(StopRequest::None),
        })
    }

    /// Locks the state. A panic elsewhere while it was held leaves it usable: every
    /// operation keeps it consistent at each step.
    pub fn lock(&self) -> StateGuard<'_> {
        StateGuard(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The hub's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
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
        let request = validate::request(request)?;
        let mut state = self.lock();
        if !state.accepting {
            return Err(stopping_status());
        }
        let (selector, engine_labels) = match request.targets {
            Some(t) => (t.selector, t.engine_labels),
            None => (None, HashMap::new()),
        };
        let placements = state.placements(selector, &engine_labels)?;
        state.check_room(placements.len(), submitter)?;
        let spec = request.spec.unwrap_or_default();
        let mut ids = Vec::with_capacity(placements.len());
        for pinned in placements {
            state.next_task_id += 1;
            let id = state.next_task_id;
            let new = NewTask {
                spec: spec.clone(),
                pinned,
                engine_labels: engine_labels.clone(),
                labels: request.labels.clone(),
                retries: request.retries,
                submitter,
            };
            let task = Task::create(id, new, self.settings.log_limits, &state.store);
            state.tasks.insert(id, task);
            state.enqueue(id);
            ids.push(id);
        }
        tracing::debug!(?ids, uid = submitter.uid, pid = submitter.pid, "submitted");
        state.dispatch();
        Ok(ids)
    }

    /// Every connected engine.
    pub fn list_engines(&self) -> Vec<EngineInfo> {
        let state = self.lock();
        state
            .engines
            .iter()
            .map(|e| e.info(state.queues.get(&e.id).map_or(0, VecDeque::len)))
            .collect()
    }

    /// One task, live or from the history.
    pub async fn get_task(&self, id: u64) -> Result<TaskInfo, Status> {
        let newest = {
            let state = self.lock();
            if let Some(task) = state.tasks.get(&id) {
                return Ok(task.info());
            }
            state.next_task_id
        };
        self.store
            .query(move |conn| crate::store::task_info(conn, id))
            .await?
            .ok_or_else(|| unknown_task(id, newest))
    }

    /// Queue lengths, overall and per engine.
    pub fn queue_status(&self) -> QueueStatusReply {
        let state = self.lock();
        QueueStatusReply {
            tasks_in_memory: state.tasks.len() as u32,
            unassigned: state.unplaced.len() as u32,
            engines: state
                .engines
                .iter()
                .map(|e| warren_proto::v1::EngineQueue {
                    engine_id: e.id,
                    queued: state.queues.get(&e.id).map_or(0, VecDeque::len) as u32,
                    running: e.active.len() as u32,
                    slots: e.slots() as u32,
                })
                .collect(),
        }
    }

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
            self.get_task(id).await?;
            reply.already_final.push(id);
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
        for id in unknown {
            self.get_task(id).await?;
            reply.not_running.push(id);
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

    /// Stops taking work; with `engines_exit`, tells every engine to stop its tasks and exit
    /// and waits (bounded) for their ends to be recorded.
    pub async fn wind_down(&self, engines_exit: bool, grace: Duration) {
        {
            let mut state = self.lock();
            state.accepting = false;
            if engines_exit {
                for engine in state.engines.iter() {
                    engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                        exit: true,
                        reason: "the hub is shutting down and asked its engines to exit".into(),
                    }));
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

    /// Stops: ends follow streams, lets engines go (they keep their tasks for the next hub).
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopping = true;
        for engine in state.engines.drain() {
            engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                exit: false,
                reason: "the hub is shutting down".into(),
            }));
            if let Some(reader) = engine.reader {
                reader.abort();
            }
        }
        for task in state.tasks.values() {
            task.notify.notify_waiters();
        }
    }
}

impl State {
    /// Puts recovered live tasks back: queued ones in their queues, placed ones waiting for
    /// their engine to come back.
    fn resume(&mut self, live: Vec<(crate::store::TaskRow, Vec<warren_proto::v1::Attempt>)>) {
        let grace = self.settings.reattach_grace;
        for (row, attempts) in live {
            let id = row.id;
            let assigned = row.attempt > 0 && row.engine_id != 0;
            let engine_id = row.engine_id;
            let mut task = Task::resume(row, attempts, self.settings.log_limits);
            // Engines that died with it stay avoided.
            task.avoid = task
                .attempts
                .iter()
                .filter(|a| a.ended_us != 0)
                .map(|a| a.engine_id)
                .collect();
            self.tasks.insert(id, task);
            if assigned {
                self.awaiting
                    .entry(engine_id)
                    .or_insert_with(|| Awaiting {
                        deadline: Instant::now() + grace,
                        tasks: Vec::new(),
                        why: format!("did not come back within {grace:?} of the hub's restart"),
                        who: format!("engine {engine_id}"),
                    })
                    .tasks
                    .push(id);
            } else {
                self.enqueue(id);
            }
        }
        if !self.tasks.is_empty() {
            tracing::info!(
                tasks = self.tasks.len(),
                waiting_for_engines = self.awaiting.len(),
                "carried on the history's unfinished tasks"
            );
        }
    }

    /// The task with this id in memory, or NOT_FOUND.
    pub fn task(&self, id: u64) -> Result<&Task, Status> {
        self.tasks
            .get(&id)
            .ok_or_else(|| unknown_task(id, self.next_task_id))
    }

    /// Puts a queued task in the queue it belongs to.
    pub fn enqueue(&mut self, id: u64) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let pid = task.row.submitter.pid;
        match task.row.pinned {
            Some(engine) => self.queues.entry(engine).or_default().push_back(id),
            None => self.unplaced.push_back(id),
        }
        *self.queued_by_client.entry(pid).or_default() += 1;
    }

    /// Takes a task out of whichever queue holds it (a no-op if none does).
    pub fn dequeue(&mut self, id: u64) -> bool {
        let Some(task) = self.tasks.get(&id) else {
            return false;
        };
        let pid = task.row.submitter.pid;
        let queue = match task.row.pinned {
            Some(engine) => self.queues.get_mut(&engine),
            None => Some(&mut self.unplaced),
        };
        let removed = queue
            .and_then(|q| q.iter().position(|&t| t == id).map(|pos| q.remove(pos)))
            .is_some();
        if removed {
            self.dequeued(pid);
        }
        removed
    }

    /// Counts a task of `pid` out of the queues.
    pub fn dequeued(&mut self, pid: u32) {
        if let Some(count) = self.queued_by_client.get_mut(&pid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.queued_by_client.remove(&pid);
            }
        }
    }

    fn queued_total(&self) -> usize {
        self.unplaced.len() + self.queues.values().map(VecDeque::len).sum::<usize>()
    }

    /// Refuses more queued work than the limits allow.
    fn check_room(&self, more: usize, submitter: Submitter) -> Result<(), Status> {
        let limits = &self.settings.limits;
        if self.queued_total() + more > limits.max_queued {
            return Err(Status::resource_exhausted(format!(
                "the hub already has {} tasks waiting for engines (--max-queued {}); wait for some to start, or abort some",
                self.queued_total(),
                limits.max_queued
            )));
        }
        let mine = self
            .queued_by_client
            .get(&submitter.pid)
            .copied()
            .unwrap_or(0);
        if mine + more > limits.max_queued_per_client {
            return Err(Status::resource_exhausted(format!(
                "this process (pid {}) already has {mine} tasks waiting for engines (--max-queued-per-client {}); wait for some to start",
                submitter.pid, limits.max_queued_per_client
            )));
        }
        Ok(())
    }

    /// Which engine each new task goes to (`None`: any), for a request's targets.
    fn placements(
        &self,
        selector: Option<targets::Selector>,
        engine_labels: &HashMap<String, String>,
    ) -> Result<Vec<Option<u32>>, Status> {
        let labelled = || {
            self.engines
                .iter()
                .filter(|e| e.has_labels(engine_labels))
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        let no_such_labels = || {
            Status::not_found(format!(
                "no registered engine has the labels {}; `warren engines` lists engines and their labels",
                validate::labels_text(engine_labels)
            ))
        };
        match selector {
            None | Some(targets::Selector::Any(_)) => {
                if !engine_labels.is_empty() && labelled().is_empty() {
                    return Err(no_such_labels());
                }
                Ok(vec![None])
            }
            Some(targets::Selector::All(_)) => {
                if self.engines.is_empty() {
                    return Err(Status::failed_precondition(
                        "no engines are registered, so `all` selects none; start one with `warren-engine`",
                    ));
                }
                let ids = labelled();
                if ids.is_empty() {
                    return Err(no_such_labels());
                }
                Ok(ids.into_iter().map(Some).collect())
            }
            Some(targets::Selector::Engines(list)) => {
                if !engine_labels.is_empty() {
                    return Err(Status::invalid_argument(
                        "targets.engine_labels go with `all` or `any`, not with a list of engine ids",
                    ));
                }
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
}

/// NOT_FOUND for a task id, saying which ids exist.
pub fn unknown_task(id: u64, newest: u64) -> Status {
    if newest == 0 {
        Status::not_found(format!(
            "task {id} does not exist: this hub has no tasks yet"
        ))
    } else {
        Status::not_found(format!(
            "task {id} does not exist (or was purged): this hub's tasks are numbered up to {newest}"
        ))
    }
}
