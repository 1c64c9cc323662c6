//! Sessions: long-lived interpreters that run cells, one runner per session ([`runner`]),
//! started as the cell protocol says ([`spawn`], [`protocol`]; docs/cell-protocol.md).
//!
//! [`Sessions`] is the engine's registry of them. The hub opens, restarts and closes them
//! (`OpenSession`, `CloseSession`) and sends cells (`RunCell`) as soon as they are submitted:
//! each session's runner queues its cells and runs them one at a time, in the order received.
//! A cell is a task to the rest of the engine ([`Tasks`]): its start, output and end go to the
//! hub through the outbox like any task's, so a cell running when the hub dies ends with all
//! of its output once a hub is back. What the runners say of the sessions themselves (ready,
//! ended) goes out as `SessionStarted` and `SessionEnded`, and every session is reported in
//! the Hello of each new registration, so the hub learns of anything it missed.

mod protocol;
mod runner;
mod spawn;

pub use protocol::{Done, Frames, ProtocolError, Reply};
pub use spawn::{BASH_DRIVER, PYTHON_DRIVER};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use warren_proto::now_us;
use warren_proto::v1::{
    EngineMessage, OpenSession, RunCell, SessionEnded, SessionReport, SessionStarted, TaskResult,
    TaskState, engine_message,
};

use crate::control::{Cell, ControlTx, SessionCommand};
use crate::tasks::Tasks;

/// One session the engine has.
#[derive(Debug)]
struct Handle {
    generation: u32,
    tx: mpsc::UnboundedSender<SessionCommand>,
    pid: u32,
    ready: bool,
    banner: String,
    ended: Option<SessionEnded>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: BTreeMap<u64, Handle>,
    /// Messages for the hub, sent by the registration's loop.
    outgoing: Vec<EngineMessage>,
}

/// The engine's sessions.
#[derive(Debug)]
pub struct Sessions {
    inner: Mutex<Inner>,
    tasks: Arc<Tasks>,
    grace: Duration,
    tracker: TaskTracker,
}

impl Sessions {
    /// No sessions yet; their cells report to `tasks`, and a session being closed gets
    /// `grace` between SIGTERM and SIGKILL.
    pub fn new(tasks: Arc<Tasks>, grace: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::default(),
            tasks,
            grace,
            tracker: TaskTracker::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session's interpreter; a newer generation replaces (kills) the one running.
    pub fn open(self: &Arc<Self>, engine_id: u32, open: OpenSession) {
        let (id, generation) = (open.session_id, open.generation);
        let (tx, rx) = mpsc::unbounded_channel();
        let old = {
            let mut inner = self.lock();
            if inner
                .by_id
                .get(&id)
                .is_some_and(|h| h.generation >= generation)
            {
                return;
            }
            inner.by_id.insert(
                id,
                Handle {
                    generation,
                    tx,
                    pid: 0,
                    ready: false,
                    banner: String::new(),
                    ended: None,
                },
            )
        };
        if let Some(old) = old {
            let _ = old.tx.send(SessionCommand::Close {
                reason: "the session was restarted".into(),
                kill: true,
            });
        }
        tracing::info!(session = id, generation, "opening a session");
        let spec = open.spec.unwrap_or_default();
        let runner = runner::Runner::new(id, generation, spec, self.clone(), rx);
        let span = tracing::info_span!("session", session = id, generation, engine = engine_id);
        self.tracker.spawn(runner.run().instrument(span));
    }

    /// Closes a session: its queued cells end, then its interpreter.
    pub fn close(&self, id: u64, reason: String) {
        if let Some(handle) = self.lock().by_id.get(&id) {
            let _ = handle.tx.send(SessionCommand::Close {
                reason,
                kill: false,
            });
        }
    }

    /// Closes every session (the engine is exiting).
    pub fn close_all(&self, why: &str) {
        for handle in self.lock().by_id.values() {
            let _ = handle.tx.send(SessionCommand::Close {
                reason: format!("its engine is exiting: {why}"),
                kill: false,
            });
        }
    }

    /// Takes a cell for a session: queued by its runner, or ended at once if the session is
    /// not here (in that generation).
    pub fn run_cell(&self, run: RunCell) {
        if self.tasks.has(run.task_id, run.attempt) {
            return;
        }
        let cell = Cell {
            task_id: run.task_id,
            attempt: run.attempt,
            code: run.code,
            timeout: run.timeout_ms.map(Duration::from_millis),
        };
        let inner = self.lock();
        let handle = inner.by_id.get(&run.session_id);
        let tx = match handle {
            Some(h) if h.generation == run.generation => Some(h.tx.clone()),
            _ => None,
        };
        let why = match handle {
            Some(h) if h.generation != run.generation => format!(
                "session {} was restarted before the cell reached it",
                run.session_id
            ),
            _ => format!(
                "session {} is not on this engine (it was closed, or the engine restarted)",
                run.session_id
            ),
        };
        drop(inner);
        let control = match &tx {
            Some(session) => ControlTx::Cell {
                task_id: cell.task_id,
                session: session.clone(),
            },
            None => ControlTx::Runner(mpsc::unbounded_channel().0),
        };
        self.tasks.add(cell.task_id, cell.attempt, control);
        let queued = tx.is_some_and(|tx| tx.send(SessionCommand::Cell(cell.clone())).is_ok());
        if !queued {
            self.tasks.finished(
                cell.task_id,
                cell.attempt,
                TaskResult {
                    state: TaskState::Lost as i32,
                    error: why,
                    finished_us: now_us(),
                    attempt: cell.attempt,
                    ..Default::default()
                },
            );
        }
    }

    /// Starts a registration: what to report in Hello (what was to be sent is in it).
    pub fn begin_session(&self) -> Vec<SessionReport> {
        let mut inner = self.lock();
        inner.outgoing.clear();
        inner
            .by_id
            .iter()
            .map(|(&id, h)| SessionReport {
                session_id: id,
                generation: h.generation,
                pid: h.pid,
                ready: h.ready,
                banner: h.banner.clone(),
                ended: h.ended.clone(),
            })
            .collect()
    }

    /// The messages for the hub that are waiting.
    pub fn next_messages(&self) -> Vec<EngineMessage> {
        std::mem::take(&mut self.lock().outgoing)
    }

    /// How many sessions the engine has (live or dead).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for every runner to end (the engine is exiting), up to `limit`; false if some
    /// did not.
    pub async fn wait(&self, limit: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_ok()
    }

    fn send(&self, inner: &mut Inner, kind: engine_message::Kind) {
        inner.outgoing.push(EngineMessage { kind: Some(kind) });
        self.tasks.changed.notify_one();
    }

    /// From a runner: the interpreter said `ready`.
    fn started(&self, id: u64, generation: u32, pid: u32, banner: String) {
        let mut inner = self.lock();
        let Some(handle) = inner
            .by_id
            .get_mut(&id)
            .filter(|h| h.generation == generation)
        else {
            return;
        };
        handle.ready = true;
        handle.pid = pid;
        handle.banner.clone_from(&banner);
        let started = SessionStarted {
            session_id: id,
            generation,
            pid,
            banner,
            started_us: now_us(),
        };
        self.send(&mut inner, engine_message::Kind::SessionStarted(started));
    }

    /// From a runner: whether its interpreter is ready.
    fn is_ready(&self, id: u64, generation: u32) -> bool {
        self.lock()
            .by_id
            .get(&id)
            .is_some_and(|h| h.generation == generation && h.ready)
    }

    /// From a runner: the interpreter ended. A closed session is forgotten once the hub
    /// has been told (or at once if no hub is connected: the hub closed it itself).
    fn ended(&self, ended: SessionEnded) {
        let mut inner = self.lock();
        let Some(handle) = inner
            .by_id
            .get_mut(&ended.session_id)
            .filter(|h| h.generation == ended.generation)
        else {
            return;
        };
        handle.ready = false;
        handle.pid = 0;
        handle.ended = Some(ended.clone());
        if ended.closed {
            inner.by_id.remove(&ended.session_id);
        }
        self.send(&mut inner, engine_message::Kind::SessionEnded(ended));
    }

    /// From a runner: it has returned (closed, or replaced).
    fn gone(&self, id: u64, generation: u32) {
        let mut inner = self.lock();
        if inner
            .by_id
            .get(&id)
            .is_some_and(|h| h.generation == generation)
        {
            inner.by_id.remove(&id);
        }
    }
}
