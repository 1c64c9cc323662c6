//! Applying a batch of changes in one transaction.

use prost::Message;
use rusqlite::{Connection, Transaction, params};
use std::collections::HashMap;
use warren_proto::v1::{Attempt, OutputGap, Targets, TaskEvent};

use super::op::{Committed, Op, Query};
use crate::model::{Progress, TaskRow};

/// Applies every write in `ops` in one transaction; reads are set aside to run after it.
pub(super) fn apply_batch(
    conn: &mut Connection,
    ops: Vec<Op>,
    queries: &mut Vec<Query>,
    report: &mut Committed,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    // Counters move with every chunk: only each task's last ones are written.
    let mut progress: HashMap<u64, Progress> = HashMap::new();
    for op in flatten(ops) {
        match op {
            Op::Task(row) => {
                upsert_task(&tx, &row)?;
                if row.state.is_final() {
                    report.finals.push(row.id);
                }
                progress.insert(row.id, row.progress);
            }
            Op::Event {
                task_id,
                event,
                progress: after,
            } => {
                insert_event(&tx, task_id, &event)?;
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
                    insert_event(&tx, task_id, &event)?;
                }
                if let Some(gap) = gap {
                    upsert_gap(&tx, task_id, &gap)?;
                }
                progress.insert(task_id, after);
                report.bytes += bytes;
            }
            Op::Finish { event, row } => {
                insert_event(&tx, row.id, &event)?;
                upsert_task(&tx, &row)?;
                report.finals.push(row.id);
                progress.insert(row.id, row.progress);
            }
            Op::Dependencies {
                task_id,
                after,
                after_ok,
            } => super::deps::insert(&tx, task_id, &after, &after_ok)?,
            Op::Attempt { task_id, attempt } => upsert_attempt(&tx, task_id, &attempt)?,
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
    // Every task touched in the batch is in `progress`, rows inserted by it too: this is the
    // one place the counters are written.
    for (task_id, p) in &progress {
        update_progress(&tx, *task_id, p)?;
    }
    tx.commit()?;
    report.progress = progress;
    Ok(())
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

pub(super) fn insert_event(
    tx: &Transaction<'_>,
    task_id: u64,
    event: &TaskEvent,
) -> rusqlite::Result<()> {
    // Large output goes to the task's segment file; its row keeps the rest of the event.
    let bare = super::segments::append(tx, task_id, event)?;
    tx.prepare_cached("INSERT OR IGNORE INTO events (task_id, seq, event) VALUES (?1, ?2, ?3)")?
        .execute(params![
            task_id as i64,
            event.seq as i64,
            bare.as_ref().unwrap_or(event).encode_to_vec()
        ])?;
    Ok(())
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

/// Inserts or updates a task's row; its counters start at zero and are written, with every
/// other task's, by [`update_progress`] at the end of the batch.
fn upsert_task(tx: &Transaction<'_>, row: &TaskRow) -> rusqlite::Result<()> {
    let asked = &row.asked;
    let engine_labels = Targets {
        selector: None,
        engine_labels: asked.engine_labels.clone(),
    }
    .encode_to_vec();
    let finished_us = row.result.as_ref().map(|r| r.finished_us);
    let result = row.result.as_ref().map(Message::encode_to_vec);
    tx.prepare_cached(
        "INSERT INTO tasks (id, spec, pinned_engine, engine_labels, retries, submitter_uid,
                                submitter_pid, submitted_us, state, reason, engine_id, attempt,
                                engine_deaths, started_us, finished_us, result, next_seq,
                                output_bytes, kept_bytes, dropped_bytes, chunk_seq, session_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     0, 0, 0, 0, 0, ?17)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                engine_id = excluded.engine_id, attempt = excluded.attempt,
                engine_deaths = excluded.engine_deaths, started_us = excluded.started_us,
                finished_us = excluded.finished_us, result = excluded.result",
    )?
    .execute(params![
        row.id as i64,
        asked.spec.encode_to_vec(),
        asked.pinned,
        engine_labels,
        asked.retries,
        asked.submitter.uid,
        asked.submitter.pid,
        asked.submitted_us,
        row.state as i32,
        row.reason,
        row.engine_id,
        row.attempt,
        row.engine_deaths,
        row.started_us,
        finished_us,
        result,
        asked.session_id.map(|id| id as i64),
    ])?;
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
    use crate::store::{Location, Op, Store};

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
            store.write((1..=3).map(engine).collect());
            store.write(vec![Op::ForgetEngines(vec![1, 2, 3])]);
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
