//! Applying a batch of changes in one transaction.

use prost::Message;
use rusqlite::{Connection, ToSql, Transaction, params, params_from_iter};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use warren_proto::v1::{Attempt, OutputGap, Targets, TaskEvent};

use super::op::{Committed, Op, Query};
use crate::model::{Progress, TaskRow};

/// Applies every write in `ops` in one transaction; reads are set aside to run after it.
///
/// A task changes state several times between two commits when commits are grouped (queued,
/// assigned, running, ended): only its last row is written, once, with its last counters, so
/// a group costs one row update per task (and one update of each index) however many changes
/// it holds. An attempt placed and ended in the same group is written once too, as it ended.
pub(super) fn apply_batch(
    conn: &mut Connection,
    ops: Vec<Op>,
    queries: &mut Vec<Query>,
    report: &mut Committed,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    // Counters move with every chunk: only each task's last ones are written.
    let mut progress: HashMap<u64, Progress> = HashMap::new();
    let mut rows: Latest<u64, Box<TaskRow>> = Latest::default();
    let mut attempts: Latest<(u64, u32), Attempt> = Latest::default();
    for op in flatten(ops) {
        match op {
            Op::Task(row) => {
                if row.state.is_final() {
                    report.finals.push(row.id);
                }
                progress.insert(row.id, row.progress);
                rows.keep(row.id, row);
            }
            Op::Event {
                task_id,
                event,
                progress: after,
            } => {
                report.row_bytes += insert_event(&tx, task_id, &event)?;
                progress.insert(task_id, after);
            }
            Op::Output {
                task_id,
                event,
                gap,
                progress: after,
                bytes,
            } => {
                if let Some(event) = event {
                    report.row_bytes += insert_event(&tx, task_id, &event)?;
                }
                if let Some(gap) = gap {
                    upsert_gap(&tx, task_id, &gap)?;
                }
                progress.insert(task_id, after);
                report.bytes += bytes;
            }
            Op::Finish { event, row } => {
                report.row_bytes += insert_event(&tx, row.id, &event)?;
                report.finals.push(row.id);
                progress.insert(row.id, row.progress);
                rows.keep(row.id, row);
            }
            Op::Dependencies {
                task_id,
                after,
                after_ok,
            } => super::deps::insert(&tx, task_id, &after, &after_ok)?,
            Op::Attempt { task_id, attempt } => attempts.keep((task_id, attempt.number), attempt),
            Op::Engine {
                id,
                uuid,
                hostname,
                registered_us,
            } => {
                tx.prepare_cached(
                    "INSERT INTO engines (id, uuid, hostname, registered_us) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname,
                                                    registered_us = excluded.registered_us",
                )?
                .execute(params![id, uuid, hostname, registered_us])?;
                // Ids only grow, even once the engines holding the highest are forgotten.
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES ('last_engine_id', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                )?
                .execute([id])?;
            }
            Op::ForgetEngines(ids) => {
                let mut delete = tx.prepare_cached("DELETE FROM engines WHERE id = ?1")?;
                for id in ids {
                    delete.execute([id])?;
                }
            }
            Op::Session(row) => super::sessions::upsert(&tx, &row)?,
            Op::Query(query) => queries.push(query),
            // Flattened above.
            Op::Batch(_) => {}
        }
    }
    // Every task touched in the batch is in `progress`: this is the one place the counters
    // are written, with the task's row when it has one in the batch.
    for (task_id, p) in &progress {
        if !rows.has(task_id) {
            update_progress(&tx, *task_id, p)?;
        }
    }
    for (_, row) in rows.into_entries() {
        let counters = progress.get(&row.id).copied().unwrap_or(row.progress);
        upsert_task(&tx, &row, &counters)?;
    }
    for ((task_id, _), attempt) in attempts.into_entries() {
        upsert_attempt(&tx, task_id, &attempt)?;
    }
    tx.commit()?;
    report.progress = progress;
    Ok(())
}

/// The last version of each thing a batch writes (a task's row, an attempt), in the order the
/// things first appear: each carries the whole thing, so writing the last version alone is
/// what writing each in turn would leave.
struct Latest<K, V> {
    entries: Vec<(K, V)>,
    index: HashMap<K, usize>,
}

impl<K, V> Default for Latest<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash, V> Latest<K, V> {
    /// Keeps `value` as the last version of `key`.
    fn keep(&mut self, key: K, value: V) {
        match self.index.entry(key) {
            Entry::Occupied(at) => self.entries[*at.get()].1 = value,
            Entry::Vacant(at) => {
                at.insert(self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// Whether the batch writes `key`.
    fn has(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// What to write, one version each.
    fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.entries.into_iter()
    }
}

/// Ops in order, with batches unpacked.
fn flatten(ops: Vec<Op>) -> Vec<Op> {
    let mut flat = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Batch(batch) => flat.extend(flatten(batch)),
            op => flat.push(op),
        }
    }
    flat
}

/// Inserts `event` and returns the size of its row: large output goes to the task's segment
/// file, and the row keeps the rest of the event.
pub(super) fn insert_event(
    tx: &Transaction<'_>,
    task_id: u64,
    event: &TaskEvent,
) -> rusqlite::Result<u64> {
    let bare = super::segments::append(tx, task_id, event)?;
    let row = bare.as_ref().unwrap_or(event).encode_to_vec();
    let len = row.len() as u64;
    tx.prepare_cached("INSERT OR IGNORE INTO events (task_id, seq, event) VALUES (?1, ?2, ?3)")?
        .execute(params![task_id as i64, event.seq as i64, row])?;
    Ok(len)
}

fn upsert_gap(tx: &Transaction<'_>, task_id: u64, gap: &OutputGap) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO gaps (task_id, first_seq, last_seq, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (task_id, first_seq) DO UPDATE SET last_seq = excluded.last_seq,
                                                        bytes = excluded.bytes",
    )?
    .execute(params![
        task_id as i64,
        gap.first_seq as i64,
        gap.last_seq as i64,
        gap.bytes as i64
    ])?;
    Ok(())
}

fn upsert_attempt(tx: &Transaction<'_>, task_id: u64, a: &Attempt) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO attempts (task_id, number, engine_id, engine_uuid, hostname, assigned_us, ended_us, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (task_id, number) DO UPDATE SET ended_us = excluded.ended_us,
                                                     outcome = excluded.outcome",
    )?
    .execute(params![
        task_id as i64,
        a.number,
        a.engine_id,
        a.engine_uuid,
        a.hostname,
        a.assigned_us,
        a.ended_us,
        a.outcome
    ])?;
    Ok(())
}

fn update_progress(tx: &Transaction<'_>, task_id: u64, p: &Progress) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE tasks SET next_seq = ?2, output_bytes = ?3, kept_bytes = ?4,
                          dropped_bytes = ?5, chunk_seq = ?6 WHERE id = ?1",
    )?
    .execute(params![
        task_id as i64,
        p.next_seq as i64,
        p.output_bytes as i64,
        p.kept_bytes as i64,
        p.dropped_bytes as i64,
        p.chunk_seq as i64
    ])?;
    Ok(())
}

/// Inserts or updates a task's row, with its counters as they stand at the end of the batch.
/// Most writes are of a task already in the table (it was queued in an earlier transaction):
/// those update only what changes, without encoding its spec again, and a new task is
/// inserted whole, with its labels.
fn upsert_task(tx: &Transaction<'_>, row: &TaskRow, p: &Progress) -> rusqlite::Result<()> {
    let id = row.id as i64;
    let finished_us = row.result.as_ref().map(|r| r.finished_us);
    let result = row.result.as_ref().map(Message::encode_to_vec);
    let counters = [
        p.next_seq,
        p.output_bytes,
        p.kept_bytes,
        p.dropped_bytes,
        p.chunk_seq,
    ]
    .map(|n| n as i64);
    // What changes, in the order both statements name the columns.
    let changing: [&dyn ToSql; 13] = [
        &(row.state as i32),
        &row.reason,
        &row.engine_id,
        &row.attempt,
        &row.engine_deaths,
        &row.started_us,
        &finished_us,
        &result,
        &counters[0],
        &counters[1],
        &counters[2],
        &counters[3],
        &counters[4],
    ];
    let updated = tx
        .prepare_cached(
            "UPDATE tasks SET state = ?2, reason = ?3, engine_id = ?4, attempt = ?5,
                engine_deaths = ?6, started_us = ?7, finished_us = ?8, result = ?9,
                next_seq = ?10, output_bytes = ?11, kept_bytes = ?12, dropped_bytes = ?13,
                chunk_seq = ?14
             WHERE id = ?1",
        )?
        .execute(params_from_iter(
            std::iter::once(&id as &dyn ToSql).chain(changing),
        ))?;
    if updated > 0 {
        return Ok(());
    }
    let asked = &row.asked;
    let engine_labels = Targets {
        selector: None,
        engine_labels: asked.engine_labels.clone(),
    }
    .encode_to_vec();
    let spec = asked.spec.encode_to_vec();
    let session_id = asked.session_id.map(|id| id as i64);
    let fixed: [&dyn ToSql; 9] = [
        &id,
        &spec,
        &asked.pinned,
        &engine_labels,
        &asked.retries,
        &asked.submitter.uid,
        &asked.submitter.pid,
        &asked.submitted_us,
        &session_id,
    ];
    tx.prepare_cached(
        "INSERT INTO tasks (id, spec, pinned_engine, engine_labels, retries, submitter_uid,
                            submitter_pid, submitted_us, session_id, state, reason, engine_id,
                            attempt, engine_deaths, started_us, finished_us, result, next_seq,
                            output_bytes, kept_bytes, dropped_bytes, chunk_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params_from_iter(fixed.into_iter().chain(changing)))?;
    if !asked.labels.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO task_labels (task_id, key, value) VALUES (?1, ?2, ?3)",
        )?;
        for (key, value) in &asked.labels {
            insert.execute(params![row.id as i64, key, value])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::{Progress, Submission, Submitter, TaskRow};
    use crate::store::{Location, Op, Store};
    use warren_proto::v1::{Attempt, TaskEvent, TaskResult, TaskState};

    fn row(state: TaskState, next_seq: u64) -> Box<TaskRow> {
        let asked = Submission {
            spec: Default::default(),
            pinned: None,
            engine_labels: Default::default(),
            labels: [("k".to_owned(), "v".to_owned())].into(),
            retries: 0,
            submitter: Submitter::default(),
            submitted_us: 1,
            session_id: None,
            after: Vec::new(),
            after_ok: Vec::new(),
        };
        let mut row = TaskRow::queued(9, asked);
        row.state = state;
        row.progress = Progress {
            next_seq,
            ..Default::default()
        };
        if state.is_final() {
            row.result = Some(TaskResult {
                state: state as i32,
                finished_us: 5,
                ..Default::default()
            });
        }
        Box::new(row)
    }

    fn event(seq: u64) -> TaskEvent {
        TaskEvent {
            task_id: 9,
            seq,
            ..Default::default()
        }
    }

    fn progress(next_seq: u64, chunk_seq: u64) -> Progress {
        Progress {
            next_seq,
            chunk_seq,
            ..Default::default()
        }
    }

    #[test]
    fn a_task_changed_several_times_in_one_transaction_has_its_row_written_once() {
        let mut conn =
            super::super::schema::open(std::path::Path::new(":memory:"), true).expect("open");
        let ops = vec![
            Op::Task(row(TaskState::Queued, 0)),
            Op::Event {
                task_id: 9,
                event: event(0),
                progress: progress(1, 0),
            },
            Op::Batch(vec![Op::Task(row(TaskState::Running, 1))]),
            Op::Event {
                task_id: 9,
                event: event(1),
                progress: progress(2, 3),
            },
            Op::Finish {
                event: event(2),
                row: row(TaskState::Succeeded, 3),
            },
        ];
        let before = conn.total_changes();
        let (mut queries, mut report) = (Vec::new(), Default::default());
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        // Three events, one label, and one write of the task's row (not three, nor a fourth
        // for its counters).
        assert_eq!(conn.total_changes() - before, 5);
        assert_eq!(report.finals, vec![9]);
        assert_eq!(report.progress.get(&9), Some(&progress(3, 0)));
        let (state, next_seq, finished_us): (i32, i64, Option<i64>) = conn
            .query_row(
                "SELECT state, next_seq, finished_us FROM tasks WHERE id = 9",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        assert_eq!(state, TaskState::Succeeded as i32);
        assert_eq!((next_seq, finished_us), (3, Some(5)));

        // Counters alone, for a task with no row in the batch: the row is updated in place.
        let ops = vec![Op::Output {
            task_id: 9,
            event: Some(event(3)),
            gap: None,
            progress: progress(4, 7),
            bytes: 10,
        }];
        let mut report = Default::default();
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        let counters: (i64, i64, i32) = conn
            .query_row(
                "SELECT next_seq, chunk_seq, state FROM tasks WHERE id = 9",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        assert_eq!(counters, (4, 7, TaskState::Succeeded as i32));
        assert!(report.finals.is_empty());
        assert_eq!(report.bytes, 10);
    }

    #[test]
    fn a_task_written_again_in_a_later_transaction_is_updated_in_place() {
        let mut conn =
            super::super::schema::open(std::path::Path::new(":memory:"), true).expect("open");
        let (mut queries, mut report) = (Vec::new(), Default::default());
        let ops = vec![Op::Task(row(TaskState::Queued, 0))];
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        let before = conn.total_changes();
        let mut report = Default::default();
        let ops = vec![Op::Task(row(TaskState::Succeeded, 4))];
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        // One row changed: the task's (its label stays as first written).
        assert_eq!(conn.total_changes() - before, 1);
        assert_eq!(report.finals, vec![9]);
        let (state, next_seq, finished_us, labels): (i32, i64, Option<i64>, i64) = conn
            .query_row(
                "SELECT state, next_seq, finished_us,
                        (SELECT COUNT(*) FROM task_labels WHERE task_id = 9)
                 FROM tasks WHERE id = 9",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("row");
        assert_eq!(state, TaskState::Succeeded as i32);
        assert_eq!((next_seq, finished_us, labels), (4, Some(5), 1));
    }

    fn attempt(number: u32, ended_us: i64, outcome: &str) -> Op {
        Op::Attempt {
            task_id: 9,
            attempt: Attempt {
                number,
                engine_id: 1,
                engine_uuid: "uuid-1".into(),
                hostname: "host".into(),
                assigned_us: 2,
                ended_us,
                outcome: outcome.into(),
            },
        }
    }

    #[test]
    fn an_attempt_placed_and_ended_in_one_transaction_is_written_once_as_it_ended() {
        let mut conn =
            super::super::schema::open(std::path::Path::new(":memory:"), true).expect("open");
        let read = |conn: &rusqlite::Connection| -> Vec<(u32, i64, String)> {
            let mut select = conn
                .prepare("SELECT number, ended_us, outcome FROM attempts WHERE task_id = 9 ORDER BY number")
                .expect("prepare");
            let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
            rows.expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let ops = vec![
            Op::Task(row(TaskState::Queued, 0)),
            attempt(1, 0, ""),
            Op::Batch(vec![
                attempt(1, 7, "lost with its engine"),
                attempt(2, 0, ""),
            ]),
        ];
        let before = conn.total_changes();
        let (mut queries, mut report) = (Vec::new(), Default::default());
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        // The task's row, its label, and each attempt once.
        assert_eq!(conn.total_changes() - before, 4);
        assert_eq!(
            read(&conn),
            vec![
                (1, 7, "lost with its engine".to_owned()),
                (2, 0, String::new())
            ]
        );

        // An attempt placed in one transaction and ended in the next is updated in place.
        let mut report = Default::default();
        let ops = vec![attempt(2, 9, "succeeded")];
        super::apply_batch(&mut conn, ops, &mut queries, &mut report).expect("apply");
        assert_eq!(read(&conn)[1], (2, 9, "succeeded".to_owned()));
    }

    fn engine(id: u32) -> Op {
        Op::Engine {
            id,
            uuid: format!("uuid-{id}"),
            hostname: "host".into(),
            registered_us: i64::from(id),
        }
    }

    #[tokio::test]
    async fn forgotten_engines_leave_their_ids_used_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = Location::File(dir.path().join("db").join("hub.db"));
        {
            let (store, recovered, _commits) = Store::open(location.clone()).expect("open");
            assert_eq!(recovered.last_engine_id, 0);
            store.write((1..=3).map(engine).collect(), || true);
            store.write(vec![Op::ForgetEngines(vec![1, 2, 3])], || true);
            store.settled().await.expect("committed");
        }
        // The lock goes with the store; the writer may take a moment to let go of the file.
        let reopened = {
            let mut tries = 0;
            loop {
                match Store::open(location.clone()) {
                    Ok(opened) => break opened,
                    Err(_) if tries < 100 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(err) => panic!("reopen: {err}"),
                }
            }
        };
        let (_store, recovered, _commits) = reopened;
        assert!(recovered.engines.is_empty(), "{:?}", recovered.engines);
        assert_eq!(recovered.last_engine_id, 3, "ids 1-3 stay used");
    }
}
