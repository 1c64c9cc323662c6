//! Deleting finished tasks: on request (`Control.Purge`) and by the retention policy.

use rusqlite::{Connection, params_from_iter, types::Value};
use warren_proto::v1::TaskState;

/// Which finished tasks to delete.
#[derive(Clone, Debug)]
pub(crate) enum PurgeSelector {
    /// Those that finished before this time.
    FinishedBefore(i64),
    /// These ids (each must be finished).
    Ids(Vec<u64>),
    /// All finished ones.
    AllFinished,
}

/// Deletes finished tasks; returns how many and how many kept output bytes went with them.
pub(super) fn purge(
    conn: &mut Connection,
    selector: &PurgeSelector,
) -> rusqlite::Result<(u64, u64)> {
    let live = live_states();
    let ids: Vec<i64> = {
        let (sql, values): (String, Vec<Value>) = match selector {
            PurgeSelector::FinishedBefore(t) => (
                format!("SELECT id FROM tasks WHERE {live} AND finished_us < ?"),
                vec![Value::Integer(*t)],
            ),
            PurgeSelector::Ids(ids) => (
                format!(
                    "SELECT id FROM tasks WHERE {live} AND id IN ({})",
                    vec!["?"; ids.len()].join(", ")
                ),
                ids.iter().map(|id| Value::Integer(*id as i64)).collect(),
            ),
            PurgeSelector::AllFinished => (format!("SELECT id FROM tasks WHERE {live}"), vec![]),
        };
        let mut stmt = conn.prepare(&sql)?;
        stmt.query_map(params_from_iter(values), |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    delete_tasks(conn, &ids)
}

/// Deletes the oldest finished tasks until none is older than `max_age_us` and the kept
/// output of all finished tasks is at most `max_bytes`.
pub(super) fn enforce_retention(
    conn: &mut Connection,
    now_us: i64,
    max_age_us: i64,
    max_bytes: u64,
) -> rusqlite::Result<(u64, u64)> {
    let (mut count, mut bytes) = purge(conn, &PurgeSelector::FinishedBefore(now_us - max_age_us))?;
    super::sessions::forget_closed(conn, now_us - max_age_us)?;
    super::deps::forget_tombstones(conn, now_us - max_age_us)?;
    let live = live_states();
    let total: i64 = conn.query_row(
        &format!("SELECT COALESCE(SUM(kept_bytes), 0) FROM tasks WHERE {live}"),
        [],
        |r| r.get(0),
    )?;
    if total as u64 > max_bytes {
        let mut excess = total as u64 - max_bytes;
        let oldest: Vec<(i64, i64)> = {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, kept_bytes FROM tasks WHERE {live} ORDER BY finished_us, id"
            ))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut doomed = Vec::new();
        for (id, kept) in oldest {
            if excess == 0 {
                break;
            }
            doomed.push(id);
            excess = excess.saturating_sub(kept as u64);
        }
        let (c, b) = delete_tasks(conn, &doomed)?;
        count += c;
        bytes += b;
    }
    Ok((count, bytes))
}

/// The condition that leaves live tasks out: only finished ones are ever purged.
fn live_states() -> String {
    format!(
        "state NOT IN ({}, {}, {})",
        TaskState::Waiting as i32,
        TaskState::Queued as i32,
        TaskState::Running as i32
    )
}

fn delete_tasks(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<(u64, u64)> {
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let tx = conn.transaction()?;
    super::deps::before_purge(&tx, ids, warren_proto::now_us())?;
    let mut bytes = 0u64;
    for &id in ids {
        let kept: i64 = tx.query_row("SELECT kept_bytes FROM tasks WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
        bytes += kept as u64;
        for table in [
            "events",
            "output_segments",
            "gaps",
            "attempts",
            "task_labels",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE task_id = ?1"), [id])?;
        }
        tx.execute("DELETE FROM tasks WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    super::segments::remove(conn, ids);
    // Give freed pages back to the filesystem a little at a time.
    conn.execute_batch("PRAGMA incremental_vacuum(4096)")?;
    Ok((ids.len() as u64, bytes))
}
