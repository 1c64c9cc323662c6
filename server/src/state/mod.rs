//! The hub's state and every operation on it.
//!
//! One mutex guards engines, tasks and queues ([`State`]). It is never held across an
//! `.await`, and nothing under it waits for I/O: messages to engines go through unbounded
//! channels (bounded in practice by slots and by user actions), and what a change implies for
//! the history is collected as [`Op`]s and handed to the store's writer thread in one place,
//! [`Hub::update`], when the change is done.
//!
//! The files: `requests` and `actions` (what clients ask), `engines`, `goodbye` and `settle`
//! (what engines say, and what happens when they go), `scheduler` and `queues` (placing work),
//! `commits` and `acks` (what the hub does once the history is safe), `liveness` and
//! `background` (work driven by time, read from `clock`), `follow` (streaming a task's
//! events), `task`, `tasklog` and `registry` (the things the state holds), `settings`;
//! `sessions` (interpreters on engines, and the cells that run in them); `transfers` (file
//! copies relayed between clients and engines); `batch` (submitting many requests at once)
//! and `deps` (tasks waiting for others); `diagnose` (the hub's health, for `warren doctor`).

mod acks;
mod actions;
mod background;
mod batch;
mod clock;
mod commits;
mod deps;
mod diagnose;
mod engines;
mod follow;
mod goodbye;
mod liveness;
mod memory;
#[cfg(test)]
mod properties;
mod queues;
mod registry;
mod requests;
mod scheduler;
mod sessions;
mod settings;
mod settle;
mod stdin;
mod task;
mod tasklog;
#[cfg(test)]
mod testing;
mod transfers;

pub(crate) use background::Background;
pub(crate) use clock::Clock;
pub(crate) use follow::{EventStream, StdinChunks};
pub(crate) use registry::EngineTx;
pub(crate) use settings::Settings;
pub(crate) use stdin::StdinEnd;
pub(crate) use transfers::{DownloadLeg, UploadLeg};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, Semaphore, watch};
use warren_proto::v1::{ShutdownEngine, TaskState, hub_message};

use crate::error::HubError;
use crate::input::InputBudget;
use crate::store::{Op, Recovered, Store};
use deps::{Departed, Dependencies};
use queues::Awaiting;
use registry::Registry;
use task::Task;

/// Everything behind the hub's lock.
#[derive(Debug)]
pub(crate) struct State {
    settings: Arc<Settings>,
    /// Connected engines, and the ids of those remembered.
    engines: Registry,
    /// Live tasks (and ended ones still followed), by id.
    tasks: BTreeMap<u64, Task>,
    /// Tasks for any engine waiting for a slot, oldest first.
    unplaced: VecDeque<u64>,
    /// Tasks for one named engine waiting for a slot there, oldest first.
    queues: HashMap<u32, VecDeque<u64>>,
    /// Tasks whose engine is away, by engine id.
    awaiting: HashMap<u32, Awaiting>,
    /// Waiting tasks per submitting process.
    queued_by_client: HashMap<u32, usize>,
    /// Tasks held until others end, and who waits for whom.
    deps: Dependencies,
    /// How the tasks that left memory lately ended.
    departed: Departed,
    /// Tasks whose end was decided in the change under way, to settle their dependents.
    ended: Vec<(u64, TaskState)>,
    /// Open follow streams per client process.
    streams_by_client: HashMap<u32, usize>,
    /// Open follow streams, in all.
    follow_streams: usize,
    /// Stdin held for tasks not yet started.
    input: Arc<InputBudget>,
    /// The highest task id handed out.
    last_task_id: u64,
    /// Sessions not closed, and their cells in flight.
    sessions: sessions::Sessions,
    /// Cleared when the hub begins to stop: no new work is taken.
    accepting: bool,
    /// Set when the hub stops: follow streams end.
    stopping: bool,
    /// What the change under way implies for the history, in order; [`Hub::update`] hands
    /// it to the writer when the change is done.
    writes: Vec<Op>,
    /// File copies under way.
    transfers: transfers::Transfers,
    /// When to give freed memory back to the system.
    shedding: memory::Shedding,
}

impl State {
    /// Records changes for the history; they are committed when the operation ends. A
    /// task's end is noted here, the one place every end passes, for its dependents.
    fn write(&mut self, ops: impl IntoIterator<Item = Op>) {
        for op in ops {
            if let Op::Finish { row, .. } = &op {
                self.note_end(row.id, row.state);
            }
            self.writes.push(op);
        }
    }
}

/// How a stop was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopRequest {
    /// Keep running.
    None,
    /// Stop the hub; engines keep their tasks and wait for a hub to come back.
    Hub,
    /// Stop the hub and tell every engine to stop its tasks and exit.
    HubAndEngines,
}

/// The hub: its state, its settings and its history, shared by every service.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<State>,
    settings: Arc<Settings>,
    store: Store,
    clock: Clock,
    stop: watch::Sender<StopRequest>,
    /// Output bytes the hub may hold before it stops reading engines' streams.
    output_budget: Arc<Semaphore>,
    /// Bytes of events followers may hold on their way out.
    follow_budget: Arc<Semaphore>,
    input: Arc<InputBudget>,
    /// Woken whenever the hub has less in hand: an engine has fewer tasks (one ended, or the
    /// engine left), or tasks' ends are committed and shown.
    quieter: Arc<Notify>,
    background: Background,
}

impl Hub {
    /// A hub carrying on from what the database recovered, on the system clock.
    pub(crate) fn new(settings: Settings, store: Store, recovered: Recovered) -> Arc<Self> {
        Self::with_clock(settings, store, recovered, Clock::system())
    }

    /// A hub whose liveness and deadlines read `clock`.
    pub(crate) fn with_clock(
        settings: Settings,
        store: Store,
        recovered: Recovered,
        clock: Clock,
    ) -> Arc<Self> {
        let settings = Arc::new(settings);
        let input = InputBudget::new(settings.limits.max_input_held);
        let quieter = Arc::new(Notify::new());
        let mut state = State {
            settings: settings.clone(),
            engines: Registry::remembering(
                recovered.engines,
                recovered.last_engine_id,
                quieter.clone(),
            ),
            tasks: BTreeMap::new(),
            unplaced: VecDeque::new(),
            queues: HashMap::new(),
            awaiting: HashMap::new(),
            queued_by_client: HashMap::new(),
            deps: Dependencies::default(),
            departed: Departed::default(),
            ended: Vec::new(),
            streams_by_client: HashMap::new(),
            follow_streams: 0,
            input: input.clone(),
            last_task_id: recovered.next_task_id.saturating_sub(1),
            sessions: sessions::Sessions::new(recovered.last_session_id),
            accepting: true,
            stopping: false,
            writes: Vec::new(),
            transfers: transfers::Transfers::new(settings.limits.max_copies),
            shedding: memory::Shedding::default(),
        };
        state.resume(recovered.live, &recovered.past, clock.now());
        state.resume_sessions(recovered.sessions, clock.now());
        state.settle_dependents();
        // What resuming decided (tasks it failed) goes to the history now, its report with
        // the others once the hub runs.
        let writes = std::mem::take(&mut state.writes);
        store.write(writes, || false);
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
            clock,
            stop: watch::Sender::new(StopRequest::None),
            quieter,
            background: Background::default(),
        })
    }

    /// Locks the state. A panic elsewhere while it was held leaves it usable: every
    /// operation keeps it consistent at each step.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a change under the lock, then hands what it implies for the history to the
    /// writer: the one place changes are committed. It is handed over before the lock is let
    /// go, so the writer sees changes in the order they were made.
    ///
    /// A lone short task's end is committed right here (see `Store::write`), and its report
    /// applied under the same lock: a follower then finds the task's start and end together,
    /// and its client gets them in one write.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let result = change(&mut state);
        if !state.ended.is_empty() {
            state.settle_dependents();
        }
        let writes = std::mem::take(&mut state.writes);
        let report = self.store.write(writes, || state.is_idle());
        if let Some(report) = &report {
            // Applying a report changes nothing in the history: `writes` stays empty.
            state.committed(report);
        }
        drop(state);
        if let Some(report) = report {
            self.after_commit(&report);
        }
        result
    }

    /// Looks at the state under the lock, changing nothing.
    pub(crate) fn view<R>(&self, look: impl FnOnce(&State) -> R) -> R {
        look(&self.lock())
    }

    /// The hub's settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stdin held for tasks not yet started.
    pub(crate) fn input_budget(&self) -> &Arc<InputBudget> {
        &self.input
    }

    /// The work the hub runs beside its services.
    pub(crate) fn background(&self) -> &Background {
        &self.background
    }

    /// Asks the hub to stop (from `Control.Shutdown`).
    pub(crate) fn request_stop(&self, request: StopRequest) {
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
    pub(crate) async fn stop_requested(&self) -> StopRequest {
        let mut rx = self.stop.subscribe();
        match rx.wait_for(|r| *r != StopRequest::None).await {
            Ok(request) => *request,
            Err(_) => StopRequest::Hub,
        }
    }

    /// Stops: ends follow streams, lets engines go (they keep their tasks for the next hub).
    pub(crate) fn stop(&self) {
        self.update(|state| {
            state.stopping = true;
            state.fail_transfers(None, "the hub shut down");
            for engine in state.engines.drain() {
                engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                    exit: false,
                    reason: "the hub is shutting down".into(),
                }));
                engine.stop_reader();
            }
            for task in state.tasks.values() {
                task.notify.notify_waiters();
            }
        });
    }
}

impl State {
    /// NOT_FOUND for a task id, saying which ids exist.
    fn unknown_task(&self, id: u64) -> HubError {
        HubError::UnknownTask {
            id,
            newest: self.last_task_id,
        }
    }
}
