//! What the history keeps for dependencies between tasks: each task's dependencies, and a
//! small tombstone of every purged task's end, so a dependency on a purged task is judged by
//! what its record said.

use rusqlite::{Connection, Transaction, params, params_from_iter, types::Value};
use std::collections::HashMap;
use warren_proto::v1::TaskState;

/// The tables, created by schema version 2.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS task_deps (
    task_id INTEGER NOT NULL,
    dep_id INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    PRIMARY KEY (task_id, dep_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purged_tasks (
    id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    purged_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS purged_by_time ON purged_tasks (purged_us);
";

/// Ids per `IN (...)` list: well under SQLite's limit on parameters.
const CHUNK: usize = 500;

/// What the history says of a task that is not in the hub's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PastTask {
    /// It is still live (it was submitted or came back into memory since it was looked for).
    Live,
    /// It ended in this state.
    Ended(TaskState),
    /// It ended in this state and was purged since.
    Purged(TaskState),
    /// Its id was handed out, but neither its record nor its tombstone is left.
    Forgotten,
}

/// Records a task's dependencies: `after` (any end) and `after_ok` (success).
pub(super) fn insert(
    tx: &Transaction<'_>,
    task_id: u64,
    after: &[u64],
    after_ok: &[u64],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO task_deps (task_id, dep_id, ok) VALUES (?1, ?2, ?3)",
    )?;
    for (ids, ok) in [(after, false), (after_ok, true)] {
        for &dep in ids {
            insert.execute(params![task_id as i64, dep as i64, ok])?;
        }
    }
    Ok(())
}

/// A task's dependencies, as (after, after_ok), each in id order.
pub(super) fn of_task(conn: &Connection, task_id: u64) -> rusqlite::Result<(Vec<u64>, Vec<u64>)> {
    let mut stmt =
        conn.prepare_cached("SELECT dep_id, ok FROM task_deps WHERE task_id = ?1 ORDER BY dep_id")?;
    let rows = stmt.query_map([task_id as i64], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, bool>(1)?))
    })?;
    let (mut after, mut after_ok) = (Vec::new(), Vec::new());
    for row in rows {
        let (dep, ok) = row?;
        if ok {
            after_ok.push(dep);
        } else {
            after.push(dep);
        }
    }
    Ok((after, after_ok))
}

/// What the history says of each of `ids`.
pub(super) fn past(conn: &Connection, ids: &[u64]) -> rusqlite::Result<HashMap<u64, PastTask>> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let values = || chunk.iter().map(|&id| Value::Integer(id as i64));
        for (table, purged) in [("tasks", false), ("purged_tasks", true)] {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, state FROM {table} WHERE id IN ({marks})"
            ))?;
            let rows = stmt.query_map(params_from_iter(values()), |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i32>(1)?))
            })?;
            for row in rows {
                let (id, state) = row?;
                let state = TaskState::try_from(state).unwrap_or(TaskState::Unspecified);
                let past = match (purged, state.is_final()) {
                    (false, false) => PastTask::Live,
                    (false, true) => PastTask::Ended(state),
                    (true, _) => PastTask::Purged(state),
                };
                found.entry(id).or_insert(past);
            }
        }
    }
    for &id in ids {
        found.entry(id).or_insert(PastTask::Forgotten);
    }
    Ok(found)
}

/// Keeps the end of each task about to be purged, and deletes its dependencies. The ids of
/// purged tasks are remembered as used (`last_task_id`), so a restarted hub never hands out
/// a purged task's id again.
pub(super) fn before_purge(tx: &Transaction<'_>, ids: &[i64], now_us: i64) -> rusqlite::Result<()> {
    let mut tombstone = tx.prepare_cached(
        "INSERT OR REPLACE INTO purged_tasks (id, state, purged_us)
         SELECT id, state, ?2 FROM tasks WHERE id = ?1",
    )?;
    let mut forget = tx.prepare_cached("DELETE FROM task_deps WHERE task_id = ?1")?;
    for &id in ids {
        tombstone.execute(params![id, now_us])?;
        forget.execute([id])?;
    }
    if let Some(highest) = ids.iter().max() {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('last_task_id', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute([highest])?;
    }
    Ok(())
}

/// Deletes the tombstones of tasks purged before `before_us` (the retention policy keeps each
/// for `--retain-age` after its purge, as it keeps a task's record after its end: they are
/// bounded the way the records are); returns how many.
pub(super) fn forget_tombstones(conn: &Connection, before_us: i64) -> rusqlite::Result<u64> {
    let gone = conn.execute("DELETE FROM purged_tasks WHERE purged_us < ?1", [before_us])?;
    Ok(gone as u64)
}

/// The highest task id ever handed out, purged ones included.
pub(super) fn last_task_id(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT max(COALESCE((SELECT MAX(id) FROM tasks), 0),
                    COALESCE((SELECT value FROM meta WHERE key = 'last_task_id'), 0))",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|id| id as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY, state INTEGER NOT NULL);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .expect("tables");
        conn.execute_batch(TABLES).expect("dependency tables");
        conn
    }

    #[test]
    fn a_purged_task_leaves_its_end_and_its_id_behind() {
        let mut conn = conn();
        conn.execute_batch(&format!(
            "INSERT INTO tasks VALUES (1, {}), (2, {}), (3, {});",
            TaskState::Succeeded as i32,
            TaskState::Failed as i32,
            TaskState::Running as i32
        ))
        .expect("rows");
        let tx = conn.transaction().expect("tx");
        insert(&tx, 3, &[1], &[2]).expect("deps");
        before_purge(&tx, &[1, 2], 100).expect("tombstones");
        tx.execute("DELETE FROM tasks WHERE id IN (1, 2)", [])
            .expect("purge");
        tx.commit().expect("commit");

        assert_eq!(of_task(&conn, 3).expect("deps"), (vec![1], vec![2]));
        let known = past(&conn, &[1, 2, 3, 4]).expect("past");
        assert_eq!(known[&1], PastTask::Purged(TaskState::Succeeded));
        assert_eq!(known[&2], PastTask::Purged(TaskState::Failed));
        assert_eq!(known[&3], PastTask::Live);
        assert_eq!(known[&4], PastTask::Forgotten);
        conn.execute("DELETE FROM tasks", []).expect("empty");
        assert_eq!(
            last_task_id(&conn).expect("last"),
            2,
            "purged ids stay used"
        );

        assert_eq!(forget_tombstones(&conn, 100).expect("forget"), 0);
        assert_eq!(forget_tombstones(&conn, 101).expect("forget"), 2);
        assert_eq!(past(&conn, &[1]).expect("past")[&1], PastTask::Forgotten);
    }
}
