//! The hub's durable task history: one SQLite database in WAL mode, written by one thread.
//!
//! The hub never waits for the disk on its hot path: it sends [`Op`]s down a channel, and the
//! writer thread applies whatever has queued up in one transaction, then reports what is now
//! safe ([`Committed`]) so the hub can acknowledge output to engines and publish final states.
//! Reads go down the same channel and run after the writes queued before them, so a caller
//! always reads what it wrote. `--db :memory:` keeps the same design without a file.

mod checkpoint;
mod read;
mod schema;
mod write;

pub use read::{
    ListFilter, ListPage, PurgeSelector, Recovered, enforce_retention, entries, purge, task_info,
};

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use warren_proto::v1::{Attempt, OutputGap, TaskEvent, TaskInfo, TaskResult, TaskSpec, TaskState};

use crate::state::task::Submitter;
use warren_proto::private_dir::{self, DirError};

/// Ops taken into one transaction at most.
const MAX_BATCH: usize = 8192;

/// Why the database can't be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory is unsafe or can't be made.
    #[error("database {0}")]
    Dir(#[from] DirError),
    /// The file is open to others or owned by someone else.
    #[error(
        "database {path} is {why}; it holds every command and its output. Run `chmod 600 {path}` (or choose another --db)"
    )]
    Unsafe {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Another hub uses it.
    #[error("database {0} is in use by another hub; give each hub its own --db")]
    Locked(String),
    /// It can't be opened.
    #[error("cannot open database {0}: {1}. Check the path, or choose another with --db")]
    Open(String, String),
    /// It is damaged or not a database; it is left as it is.
    #[error(
        "database {0} is damaged or not a warren database ({1}). It was left untouched: move it aside (e.g. `mv {0} {0}.broken`) to start with an empty history, or point --db elsewhere"
    )]
    Corrupt(String, String),
    /// It was made by a newer warren.
    #[error(
        "database {0} has schema version {1}, newer than this hub understands; run a newer warren-hub or choose another --db"
    )]
    Newer(String, i64),
    /// It can't be written.
    #[error(
        "cannot write database {0}: {1}. Check its permissions and free space, or choose another --db"
    )]
    Unwritable(String, String),
    /// Nothing says where it should go.
    #[error(
        "no place for the database: neither XDG_STATE_HOME nor HOME is set; give --db PATH (or --db :memory:)"
    )]
    NoStateDir,
}

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// In memory: the history ends with the hub.
    Memory,
    /// In a file.
    File(PathBuf),
}

impl Location {
    /// `:memory:` or a path.
    pub fn parse(text: &str) -> Self {
        if text == ":memory:" {
            Self::Memory
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// The default: `$XDG_STATE_HOME/warren/hub.db` (else `~/.local/state/warren/hub.db`) for
    /// the default socket; for another socket, a database of its own named after its path.
    pub fn default_for(socket: &Path, socket_is_default: bool) -> Result<Self, StoreError> {
        let state = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => dir,
            _ => std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".local/state"))
                .ok_or(StoreError::NoStateDir)?,
        };
        let dir = state.join("warren");
        if socket_is_default {
            return Ok(Self::File(dir.join("hub.db")));
        }
        let name = socket
            .to_string_lossy()
            .replace('%', "%25")
            .replace('/', "%2F");
        Ok(Self::File(dir.join("hubs").join(format!("{name}.db"))))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str(":memory:"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A task's counters, as the database keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The seq the next event gets.
    pub next_seq: u64,
    /// Output bytes written in all.
    pub output_bytes: u64,
    /// Output bytes kept for replay.
    pub kept_bytes: u64,
    /// Output bytes not kept.
    pub dropped_bytes: u64,
    /// The engine's last output chunk received for the current attempt.
    pub chunk_seq: u64,
    /// The attempt `chunk_seq` belongs to.
    pub attempt: u32,
}

/// A task's whole row.
#[derive(Clone, Debug)]
pub struct TaskRow {
    /// Its id.
    pub id: u64,
    /// What it runs.
    pub spec: TaskSpec,
    /// The engine the request named, if any.
    pub pinned: Option<u32>,
    /// Labels an engine must have to run it.
    pub engine_labels: HashMap<String, String>,
    /// Its own labels.
    pub labels: HashMap<String, String>,
    /// Retries the request allowed.
    pub retries: u32,
    /// Who submitted it.
    pub submitter: Submitter,
    /// When.
    pub submitted_us: i64,
    /// Its state.
    pub state: TaskState,
    /// Why.
    pub reason: String,
    /// The engine of its current (or last) attempt; 0 if none.
    pub engine_id: u32,
    /// Its current attempt number; 0 before the first.
    pub attempt: u32,
    /// Times an engine died while running it.
    pub engine_deaths: u32,
    /// When its current attempt's process started.
    pub started_us: i64,
    /// How it ended.
    pub result: Option<TaskResult>,
    /// Its counters.
    pub progress: Progress,
}

impl TaskRow {
    /// The row as `GetTask` and `ListTasks` show it.
    pub fn info(&self, attempts: Vec<Attempt>) -> TaskInfo {
        TaskInfo {
            id: self.id,
            spec: Some(self.spec.clone()),
            engine_id: self.engine_id,
            state: self.state as i32,
            result: self.result.clone(),
            submitted_us: self.submitted_us,
            submitter_uid: self.submitter.uid,
            submitter_pid: self.submitter.pid,
            next_seq: self.progress.next_seq,
            output_bytes: self.progress.output_bytes,
            output_bytes_dropped: self.progress.dropped_bytes,
            reason: self.reason.clone(),
            labels: self.labels.clone(),
            retries: self.retries,
            attempts,
            output_bytes_kept: self.progress.kept_bytes,
        }
    }
}

/// A read to run on the writer's connection.
pub type Query = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// One change for the writer.
pub enum Op {
    /// Insert or update a task's row (and, on insert, its labels).
    Task(Box<TaskRow>),
    /// A non-output event to keep (a state change).
    Event {
        /// The task.
        task_id: u64,
        /// The event.
        event: TaskEvent,
        /// The counters after it.
        progress: Progress,
    },
    /// An output chunk: kept as an event, or added to a gap.
    Output {
        /// The task.
        task_id: u64,
        /// The event, if kept.
        event: Option<TaskEvent>,
        /// The gap it extends, if not kept.
        gap: Option<OutputGap>,
        /// The counters after it.
        progress: Progress,
        /// Bytes of hub memory this chunk holds until committed.
        bytes: u64,
    },
    /// A task's final event and row, together, so neither is ever committed alone.
    Finish {
        /// The final event.
        event: TaskEvent,
        /// The row, final.
        row: Box<TaskRow>,
    },
    /// Insert or update one attempt.
    Attempt {
        /// The task.
        task_id: u64,
        /// The attempt.
        attempt: Attempt,
    },
    /// Remember an engine's id for its uuid.
    Engine {
        /// The id.
        id: u32,
        /// The uuid.
        uuid: String,
        /// The host.
        hostname: String,
        /// When it registered.
        registered_us: i64,
    },
    /// Forget engines: their ids for their uuids (ids are never handed out again).
    ForgetEngines(Vec<u32>),
    /// A read, run after the writes queued before it are committed.
    Query(Query),
    /// Several changes, in order.
    Batch(Vec<Op>),
}

/// What a transaction made safe.
#[derive(Debug, Default)]
pub struct Committed {
    /// Each task's counters as now committed.
    pub progress: HashMap<u64, Progress>,
    /// Tasks whose final state is now committed.
    pub finals: Vec<u64>,
    /// Output bytes committed, to release to the engines.
    pub bytes: u64,
}

/// The handle to the database and its writer thread. Clones share both.
#[derive(Clone, Debug)]
pub struct Store {
    tx: mpsc::UnboundedSender<Op>,
    /// Changes made under the hub's lock, sent to the writer together when it is released:
    /// one wake-up of the writer per operation rather than one per change.
    pending: std::sync::Arc<std::sync::Mutex<Vec<Op>>>,
    location: Location,
    // Held for the hub's life: the flock that keeps a second hub out.
    _lock: std::sync::Arc<Option<File>>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Task(_) => "Op::Task",
            Self::Event { .. } => "Op::Event",
            Self::Output { .. } => "Op::Output",
            Self::Finish { .. } => "Op::Finish",
            Self::Attempt { .. } => "Op::Attempt",
            Self::Engine { .. } => "Op::Engine",
            Self::ForgetEngines(_) => "Op::ForgetEngines",
            Self::Query(_) => "Op::Query",
            Self::Batch(_) => "Op::Batch",
        })
    }
}

impl Store {
    /// Opens the database, checks it, reads what the hub needs to carry on, and starts the
    /// writer. Commit reports arrive on the returned receiver.
    pub fn open(
        location: Location,
    ) -> Result<(Self, Recovered, mpsc::UnboundedReceiver<Committed>), StoreError> {
        let (conn, lock, file) = match &location {
            Location::Memory => (schema::open(Path::new(":memory:"), true)?, None, None),
            Location::File(path) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                if let Some(dir) = path.parent() {
                    private_dir::prepare(dir)?;
                }
                let lock = lock_beside(&path)?;
                ensure_private_file(&path)?;
                (schema::open(&path, false)?, Some(lock), Some(path))
            }
        };
        let recovered = read::recover(&conn)
            .map_err(|e| StoreError::Corrupt(location.to_string(), e.to_string()))?;
        let checkpointer = file.as_deref().and_then(checkpoint::start);
        let (tx, rx) = mpsc::unbounded_channel();
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        let name = location.to_string();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer(conn, rx, committed_tx, name, checkpointer))
            .map_err(|e| StoreError::Open(location.to_string(), e.to_string()))?;
        Ok((
            Self {
                tx,
                pending: std::sync::Arc::default(),
                location,
                _lock: std::sync::Arc::new(lock),
            },
            recovered,
            committed_rx,
        ))
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Queues a change.
    pub fn send(&self, op: Op) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
    }

    /// Hands the changes sent so far to the writer.
    pub fn flush(&self) {
        let ops = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !ops.is_empty() {
            // The writer only stops when the hub does.
            let _ = self.tx.send(Op::Batch(ops));
        }
    }

    /// Runs a read on the writer's connection, after every change queued before it.
    pub async fn query<T, F>(&self, read: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // After every change queued before it.
        self.flush();
        let _ = self.tx.send(Op::Query(Box::new(move |conn| {
            let _ = reply.send(read(conn));
        })));
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(Status::internal(format!(
                "reading the task database failed: {err}"
            ))),
            Err(_) => Err(Status::unavailable("the hub is shutting down")),
        }
    }

    /// Lists tasks from the database.
    pub async fn list(&self, filter: ListFilter) -> Result<ListPage, Status> {
        self.query(move |conn| read::list(conn, &filter)).await
    }
}

/// Takes an exclusive flock on `<db>.lock`, so two hubs never share a database.
fn lock_beside(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.with_extension("db.lock");
    let describe = || path.display().to_string();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| StoreError::Unwritable(describe(), e.to_string()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Locked(describe())),
        Err(e) => Err(StoreError::Unwritable(describe(), e.to_string())),
    }
}

/// Creates the database file with mode 0600, or checks that an existing one is private.
fn ensure_private_file(path: &Path) -> Result<(), StoreError> {
    let describe = || path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let me = rustix::process::geteuid().as_raw();
            if meta.file_type().is_symlink() {
                return Err(StoreError::Unsafe {
                    path: describe(),
                    why: "a symbolic link".into(),
                });
            }
            if meta.uid() != me {
                return Err(StoreError::Unsafe {
                    path: describe(),
                    why: format!("owned by uid {}, not you (uid {me})", meta.uid()),
                });
            }
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(StoreError::Unsafe {
                    path: describe(),
                    why: format!("open to group or others (mode {mode:04o})"),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(|e| StoreError::Unwritable(describe(), e.to_string())),
        Err(e) => Err(StoreError::Open(describe(), e.to_string())),
    }
}

/// The writer thread: batches of ops, one transaction each, then the report and the reads.
fn writer(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::UnboundedReceiver<Op>,
    committed: mpsc::UnboundedSender<Committed>,
    name: String,
    mut checkpointer: Option<checkpoint::Nudger>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut ops = vec![first];
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut queries = Vec::new();
        let mut report = Committed::default();
        let result = write::apply_batch(&mut conn, ops, &mut queries, &mut report);
        if let Err(err) = result {
            // Nothing of this batch was acknowledged; engines still hold the output. Stopping
            // lets a restarted hub pick everything up again instead of going on half-blind.
            tracing::error!(database = %name, %err, "cannot commit to the task database; the hub stops");
            eprintln!("warren-hub: cannot commit to the task database {name}: {err}");
            std::process::exit(70);
        }
        if let Some(checkpointer) = &mut checkpointer {
            checkpointer.committed(report.bytes);
        }
        let _ = committed.send(report);
        for query in queries {
            query(&mut conn);
        }
    }
}
