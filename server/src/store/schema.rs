//! The database's tables, and opening a database safely.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;

use super::StoreError;

/// The schema version this build writes (`PRAGMA user_version`). Each version adds to the one
/// before (tables created if missing); a hub refuses a database of a newer version.
/// - 1: tasks, their labels, attempts, events and gaps; engines.
/// - 2: dependencies between tasks, and tombstones of purged tasks (`deps`); or, in builds
///   that had sessions and no dependencies, sessions.
/// - 3: both: the `sessions` table and `tasks.session_id`, and `deps`.
/// - 4: kept output in segment files beside the database (`output_segments`).
const VERSION: i64 = 4;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS engines (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    registered_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    spec BLOB NOT NULL,
    pinned_engine INTEGER,
    engine_labels BLOB NOT NULL,
    retries INTEGER NOT NULL,
    submitter_uid INTEGER NOT NULL,
    submitter_pid INTEGER NOT NULL,
    submitted_us INTEGER NOT NULL,
    state INTEGER NOT NULL,
    reason TEXT NOT NULL,
    engine_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    engine_deaths INTEGER NOT NULL,
    started_us INTEGER NOT NULL,
    finished_us INTEGER,
    result BLOB,
    next_seq INTEGER NOT NULL,
    output_bytes INTEGER NOT NULL,
    kept_bytes INTEGER NOT NULL,
    dropped_bytes INTEGER NOT NULL,
    chunk_seq INTEGER NOT NULL,
    session_id INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, id);
CREATE INDEX IF NOT EXISTS tasks_by_engine ON tasks (engine_id, id);
CREATE INDEX IF NOT EXISTS tasks_by_finish ON tasks (finished_us);
CREATE TABLE IF NOT EXISTS task_labels (
    task_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_pair ON task_labels (key, value, task_id);
CREATE TABLE IF NOT EXISTS attempts (
    task_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    engine_id INTEGER NOT NULL,
    engine_uuid TEXT NOT NULL,
    hostname TEXT NOT NULL,
    assigned_us INTEGER NOT NULL,
    ended_us INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    task_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_task ON events (task_id, seq);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, id) WHERE session_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    spec BLOB NOT NULL,
    engine_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    opener_uid INTEGER NOT NULL,
    opener_pid INTEGER NOT NULL,
    opened_us INTEGER NOT NULL,
    ended_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    exit_code INTEGER,
    exit_signal INTEGER,
    pid INTEGER NOT NULL,
    banner TEXT NOT NULL,
    restarts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state, id);
CREATE TABLE IF NOT EXISTS gaps (
    task_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (task_id, first_seq)
) WITHOUT ROWID;
";

/// Opens (creating if needed) and checks the database, ready for the writer.
pub(super) fn open(path: &Path, in_memory: bool) -> Result<Connection, StoreError> {
    let describe = || path.display().to_string();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if in_memory {
        Connection::open_in_memory()
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(|e| StoreError::Open(describe(), e.to_string()))?;

    // A file that isn't a database, or a damaged one, fails here; it is never rewritten.
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| StoreError::Corrupt(describe(), e.to_string()))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(describe(), check));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| StoreError::Corrupt(describe(), e.to_string()))?;
    if version > VERSION {
        return Err(StoreError::Newer(describe(), version));
    }
    let setup = || -> rusqlite::Result<()> {
        if version == 0 {
            // Must come before the first table to take effect.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        if !in_memory {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidQuery);
            }
            // Checkpoints are the checkpointer's job (see `checkpoint`); this is the backstop.
            conn.pragma_update(
                None,
                "wal_autocheckpoint",
                super::checkpoint::BACKSTOP_PAGES,
            )?;
            conn.pragma_update(
                None,
                "journal_size_limit",
                super::checkpoint::WAL_SIZE_LIMIT,
            )?;
        }
        // WAL with NORMAL survives any crash of the hub process; only a power loss can take
        // the last transactions.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if (1..VERSION).contains(&version) {
            // To version 3 from 1 or 2: sessions. Cells are tasks with a session id; tasks have none.
            // Checked first, so that a migration cut short before its version was written is
            // finished, not repeated.
            let has_column: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('tasks') WHERE name = 'session_id'",
                [],
                |row| row.get(0),
            )?;
            if !has_column {
                conn.execute_batch("ALTER TABLE tasks ADD COLUMN session_id INTEGER;")?;
            }
        }
        conn.execute_batch(TABLES)?;
        conn.execute_batch(super::deps::TABLES)?;
        conn.execute_batch(super::segments::TABLES)?;
        conn.pragma_update(None, "user_version", VERSION)?;
        Ok(())
    };
    setup().map_err(|e| StoreError::Unwritable(describe(), e.to_string()))?;
    Ok(conn)
}
