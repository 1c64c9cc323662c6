//! Checkpoints off the writer's path.
//!
//! In WAL mode committed pages are later copied into the main file (a checkpoint), with two
//! fsyncs. Left to SQLite, the committing connection does that every 1,000 pages, so one commit
//! in every few dozen waits milliseconds for it, and with it a client waiting to hear that its
//! task finished. Here a second connection on its own thread checkpoints when the writer says
//! enough has been written; the writer's own automatic checkpoint stays on, at a higher mark,
//! only as a backstop.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Pages the writer may add to the WAL before it checkpoints by itself (the backstop).
pub(super) const BACKSTOP_PAGES: i64 = 8192;
/// The WAL file is cut back to this size after a checkpoint lets it restart.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// Commits between nudges to the checkpointer.
const COMMITS_PER_NUDGE: u32 = 64;
/// Bytes of rows committed between nudges (about 1,000 pages); output kept in segment files
/// does not pass through the WAL and does not count.
const BYTES_PER_NUDGE: u64 = 4 << 20;

/// The writer's side: counts what it commits and nudges the checkpointer now and then.
#[derive(Debug)]
pub(super) struct Nudger {
    tx: SyncSender<()>,
    commits: u32,
    bytes: u64,
}

impl Nudger {
    /// Records one commit of `bytes` output bytes; nudges when enough has piled up.
    pub(super) fn committed(&mut self, bytes: u64) {
        self.commits += 1;
        self.bytes += bytes;
        if self.commits >= COMMITS_PER_NUDGE || self.bytes >= BYTES_PER_NUDGE {
            self.commits = 0;
            self.bytes = 0;
            // A nudge already waiting covers this one.
            if let Err(TrySendError::Disconnected(())) = self.tx.try_send(()) {
                tracing::debug!("the checkpointer has stopped; the writer checkpoints alone");
            }
        }
    }
}

/// Starts the checkpointer for the database at `path`. Without one (it could not open the
/// file), the writer's backstop checkpoints alone.
pub(super) fn start(path: &Path) -> Option<Nudger> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(%err, "cannot open a checkpoint connection; the writer checkpoints alone");
            return None;
        }
    };
    let (tx, rx) = sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("warren-checkpoint".into())
        .spawn(move || run(conn, rx));
    match spawned {
        Ok(_) => Some(Nudger {
            tx,
            commits: 0,
            bytes: 0,
        }),
        Err(err) => {
            tracing::warn!(%err, "cannot start the checkpoint thread; the writer checkpoints alone");
            None
        }
    }
}

/// Checkpoints once per nudge, until the writer goes away.
fn run(conn: Connection, nudges: Receiver<()>) {
    while nudges.recv().is_ok() {
        // PASSIVE: copies what it can without waiting for, or holding up, the writer.
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((wal_pages, copied)) => tracing::trace!(wal_pages, copied, "checkpoint"),
            Err(err) => tracing::warn!(%err, "checkpoint failed; the writer's backstop will do it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Location, Op, Store};
    use std::time::{Duration, Instant};

    /// Commits one small change at a time, as the hub does between tasks.
    fn commit_one_by_one(
        store: &Store,
        commits: &mut tokio::sync::mpsc::UnboundedReceiver<crate::store::Committed>,
        n: u32,
    ) {
        for id in 0..n {
            store
                .write(
                    vec![Op::Engine {
                        id,
                        uuid: format!("uuid-{id:08}-{}", "x".repeat(64)),
                        hostname: "host".into(),
                        registered_us: i64::from(id),
                    }],
                    || true,
                )
                .or_else(|| commits.blocking_recv())
                .expect("a commit report");
        }
    }

    #[test]
    fn the_checkpointer_moves_commits_into_the_main_file_before_the_backstop_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join("hub.db");
        let (store, _, mut commits) = Store::open(Location::File(path.clone())).expect("open");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        // Far fewer pages than the backstop's 8,192: only the checkpointer copies them.
        commit_one_by_one(&store, &mut commits, 300);
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            size() > before,
            "the main file stayed at {before} bytes: nothing was checkpointed"
        );
    }
}
