//! The hub's shared state and the operations the services perform on it.
//!
//! One mutex guards engines, tasks and queues. It is never held across an `.await`, and
//! nothing under it waits for I/O: messages to engines go through unbounded channels (bounded
//! in practice by slots and by user actions), and changes to the database are queued for the
//! store's writer thread.

mod actions;
pub(crate) mod commits;
mod engines;
pub mod follow;
pub(crate) mod liveness;
mod queues;
pub mod registry;
mod scheduler;
mod settings;
pub mod task;
pub mod tasklog;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Semaphore, watch};
use tonic::Status;
use warren_proto::v1::{
    EngineInfo, ExecuteRequest, QueueStatusReply, ShutdownEngine, TaskInfo, hub_message,
};

use crate::input::InputBudget;
use crate::state::registry::Registry;
use crate::state::task::{NewTask, Submitter, Task};
use crate::store::{Recovered, Store};
use crate::validate;

pub use queues::Awaiting;
pub use settings::{Limits, Settings};

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
    /// Open follow streams, in all.
    pub follow_streams: usize,
    /// Stdin held for tasks not yet started.
    pub input: Arc<InputBudget>,
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
    /// Bytes of events followers may hold on their way out.
    pub follow_budget: Arc<Semaphore>,
    input: Arc<InputBudget>,
}

/// A status for a hub that is stopping.
pub fn stopping_status() -> Status {
    Status::unavailable("the hub is shutting down; start it again and retry")
}

impl Hub {
    /// A hub carrying on from what the database recovered.
    pub fn new(settings: Settings, store: Store, recovered: Recovered) -> Arc<Self> {
        let settings = Arc::new(settings);
        let input = InputBudget::new(settings.limits.max_input_held);
        let mut state = State {
            store: store.clone(),
            settings: settings.clone(),
            engines: Registry::remembering(recovered.engines, recovered.last_engine_id),
            tasks: BTreeMap::new(),
            unplaced: VecDeque::new(),
            queues: HashMap::new(),
            awaiting: HashMap::new(),
            queued_by_client: HashMap::new(),
            streams_by_client: HashMap::new(),
            follow_streams: 0,
            input: input.clone(),
            next_task_id: recovered.next_task_id.saturating_sub(1),
            accepting: true,
            stopping: false,
        };
        state.resume(recovered.live);
        Arc::new(Self {
            state: Mutex::new(state),
            output_budget: Arc::new(Semaphore::new(settings.limits.output_in_flight)),
            follow_budget: Arc::new(Semaphore::new(
                settings
                    .limits
                    .follow_memory
                    .clamp(1 << 20, Semaphore::MAX_PERMITS),
            )),
            input,
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

    /// Stdin held for tasks not yet started.
    pub fn input_budget(&self) -> &Arc<InputBudget> {
        &self.input
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
        state
            .input
            .check(spec.stdin.len() as u64, placements.len())?;
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
