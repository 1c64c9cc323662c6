//! The hub's durable task history: one SQLite database in WAL mode, written by one thread at
//! a time.
//!
//! The hub never waits for the disk on its hot path: it hands [`Op`]s over, and the writer
//! thread applies whatever has queued up in one transaction (changes nobody waits for wait a
//! little for company: `group`), then reports what is now safe ([`Committed`]) so the hub can
//! acknowledge output to engines and publish final states. A small transaction someone waits
//! for is committed by the thread that hands it over when the writer thread is idle, which
//! spares the two wake-ups of a handover (`Store::write`). Reads queue with the changes and
//! run on the writer thread after the writes handed over before them, so a caller always
//! reads what it wrote. `--db :memory:` keeps the same design without a file.

mod checkpoint;
mod deps;
mod group;
mod health;
mod op;
mod purge;
mod queries;
mod read;
mod replay;
mod schema;
mod segments;
mod sessions;
mod write;
mod writer;

pub(crate) use deps::PastTask;
pub(crate) use op::{Committed, Op};
pub(crate) use purge::PurgeSelector;
pub(crate) use queries::QueryError;
pub(crate) use read::{ListFilter, ListPage, Recovered};

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

use warren_proto::os::private_dir::{self, DirError};
use warren_proto::private_file::check_private;
use writer::{Closer, Handoff, Writer};

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
pub(crate) enum Location {
    /// In memory: the history ends with the hub.
    Memory,
    /// In a file.
    File(PathBuf),
}

impl Location {
    /// `:memory:` or a path.
    pub(crate) fn parse(text: &str) -> Self {
        if text == ":memory:" {
            Self::Memory
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// The default: `$XDG_STATE_HOME/warren/hub.db` (else `~/.local/state/warren/hub.db`) for
    /// the default socket; for another socket, a database of its own named after its path.
    pub(crate) fn default_for(socket: &Path, socket_is_default: bool) -> Result<Self, StoreError> {
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

/// The handle to the database and its writer thread. Clones share both.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    handoff: std::sync::Arc<Handoff>,
    location: Location,
    // Held for the hub's life: the flock that keeps a second hub out.
    _lock: std::sync::Arc<Option<File>>,
    // Dropped with the last clone: the writer then commits what waits and ends.
    _closer: std::sync::Arc<Closer>,
}

impl Store {
    /// Opens the database, checks it, reads what the hub needs to carry on, and starts the
    /// writer. Commit reports arrive on the returned receiver.
    pub(crate) fn open(
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
        let (committed, committed_rx) = mpsc::unbounded_channel();
        let writer = Writer::new(
            conn,
            committed,
            location.to_string(),
            file.as_deref().and_then(checkpoint::start),
        );
        let handoff = Handoff::start(writer)
            .map_err(|e| StoreError::Open(location.to_string(), e.to_string()))?;
        Ok((
            Self {
                _closer: std::sync::Arc::new(Closer(handoff.clone())),
                handoff,
                location,
                _lock: std::sync::Arc::new(lock),
            },
            recovered,
            committed_rx,
        ))
    }

    /// Where the database is.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// Hands changes to the writer, to be committed together and in this order after every
    /// change handed over before them. `alone` is asked only when they complete a small
    /// transaction that goes at once (a short task's end, say): whether nothing else runs or
    /// waits, so that no other change is coming to share it.
    ///
    /// If so, and the writer thread is not in a transaction, the caller commits it: waking a
    /// sleeping thread, and being woken by it with the report, each cost more on an idle
    /// machine (tens of microseconds where the cores halt) than such a commit does. While
    /// other tasks run, the writer thread commits, and their ends gather while it wakes.
    ///
    /// A transaction the caller committed has its report handed back, for the caller to
    /// apply at once, when every report sent before it has been applied (dropped); else it is
    /// sent like the others.
    pub(crate) fn write(&self, ops: Vec<Op>, alone: impl FnOnce() -> bool) -> Option<Committed> {
        if ops.is_empty() {
            return None;
        }
        self.handoff.hand_over(Op::Batch(ops), alone)
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
        Ok(meta) => check_private(&meta).map_err(|why| StoreError::Unsafe {
            path: describe(),
            why: why.to_string(),
        }),
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
