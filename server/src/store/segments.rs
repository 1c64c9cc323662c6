//! Kept output in segment files beside the database: one append-only file per task in
//! `<db>.output/`, its chunks' places in the `output_segments` table.
//!
//! A chunk of kept output written as a row costs SQLite its bytes three times (the row, the
//! WAL with its checksums, the checkpoint) and was half the hub's CPU on a stream. Appended to
//! a file it costs one write. The bytes are written before the transaction that records where
//! they are commits, so what the database points at is always there after a crash of the hub;
//! bytes of a transaction that never committed are left unreferenced (the engine sends them
//! again). An in-memory database keeps its output in its rows.

use rusqlite::{Connection, Transaction, params};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::PathBuf;
use warren_proto::v1::{TaskEvent, task_event::Kind};

/// Chunks smaller than this stay in their rows: a file write would cost more than it saves.
const MIN_BYTES: usize = 16 << 10;

/// The table of chunks kept in segment files (created with the others; schema version 4).
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS output_segments (
    task_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
";

/// Where the database on `conn` keeps its segment files; `None` for one in memory.
fn dir(conn: &Connection) -> Option<PathBuf> {
    match conn.path() {
        Some(path) if !path.is_empty() => Some(PathBuf::from(format!("{path}.output"))),
        _ => None,
    }
}

fn file_of(dir: &std::path::Path, task_id: u64) -> PathBuf {
    dir.join(task_id.to_string())
}

fn io_error(err: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

/// Writes an output event's bytes to the task's segment file and returns the event without
/// them, to go in its row; `None` if the event stays whole in its row.
pub(super) fn append(
    tx: &Transaction<'_>,
    task_id: u64,
    event: &TaskEvent,
) -> rusqlite::Result<Option<TaskEvent>> {
    let Some(Kind::Output(chunk)) = &event.kind else {
        return Ok(None);
    };
    if chunk.data.len() < MIN_BYTES {
        return Ok(None);
    }
    let Some(dir) = dir(tx) else {
        return Ok(None);
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_error)?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file_of(&dir, task_id))
        .map_err(io_error)?;
    // The writer thread is the only writer: the end of the file is where this chunk goes.
    let offset = file.metadata().map_err(io_error)?.len();
    file.write_all(&chunk.data).map_err(io_error)?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO output_segments (task_id, seq, offset, len) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        task_id as i64,
        event.seq as i64,
        offset as i64,
        chunk.data.len() as i64
    ])?;
    let mut bare = event.clone();
    if let Some(Kind::Output(chunk)) = &mut bare.kind {
        chunk.data = bytes::Bytes::new();
    }
    Ok(Some(bare))
}

/// Puts back into `event` its bytes from the task's segment file.
pub(super) fn fill(
    conn: &Connection,
    task_id: u64,
    (offset, len): (u64, usize),
    event: &mut TaskEvent,
) -> rusqlite::Result<()> {
    let Some(dir) = dir(conn) else {
        return Ok(());
    };
    let file = File::open(file_of(&dir, task_id)).map_err(io_error)?;
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, offset).map_err(io_error)?;
    if let Some(Kind::Output(chunk)) = &mut event.kind {
        chunk.data = data.into();
    }
    Ok(())
}

/// Removes the segment files of deleted tasks (after their rows are gone).
pub(super) fn remove(conn: &Connection, task_ids: &[i64]) {
    let Some(dir) = dir(conn) else {
        return;
    };
    for id in task_ids {
        match std::fs::remove_file(dir.join(id.to_string())) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(task = id, %err, "cannot remove a task's output file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use warren_proto::v1::{OutputChunk, TaskEvent, task_event::Kind};

    use crate::model::Entry;

    fn output(seq: u64, byte: u8, len: usize) -> TaskEvent {
        TaskEvent {
            task_id: 7,
            seq,
            kind: Some(Kind::Output(OutputChunk {
                stream: 1,
                data: vec![byte; len].into(),
            })),
            ..TaskEvent::default()
        }
    }

    #[test]
    fn large_chunks_go_to_the_tasks_file_and_come_back_in_order_with_the_small_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.db");
        let mut conn = super::super::schema::open(&path, false).expect("open");
        let events = [
            output(0, b'a', 100 << 10),
            output(1, b'b', 10),
            output(2, b'c', 64 << 10),
        ];
        let tx = conn.transaction().expect("tx");
        let rows: Vec<u64> = events
            .iter()
            .map(|event| super::super::write::insert_event(&tx, 7, event).expect("insert"))
            .collect();
        tx.commit().expect("commit");
        // What the checkpointer counts: the rows, not the bytes in the file.
        assert!(rows[0] < 64 && rows[2] < 64, "bare rows: {rows:?}");
        assert!(rows[1] > 10, "a small chunk stays in its row: {rows:?}");

        let file = dir.path().join("hub.db.output").join("7");
        let on_disk = std::fs::metadata(&file).expect("the task's file").len();
        assert_eq!(on_disk, (100 << 10) + (64 << 10), "only the large chunks");
        let row_bytes: i64 = conn
            .query_row("SELECT SUM(length(event)) FROM events", [], |r| r.get(0))
            .expect("rows");
        assert!(
            row_bytes < 1024,
            "the rows hold no large chunk: {row_bytes}"
        );

        let read = super::super::replay::entries(&conn, 7, 0, 3, 1 << 20).expect("replay");
        let got: Vec<TaskEvent> = read
            .into_iter()
            .map(|(entry, _)| match entry {
                Entry::Event(event) => event,
                Entry::Gap(gap) => panic!("unexpected gap {gap:?}"),
            })
            .collect();
        assert_eq!(got, events);

        super::remove(&conn, &[7]);
        assert!(!file.exists(), "removed with the task");
    }
}
