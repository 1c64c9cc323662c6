//! Reading the history back: for recovery at start, for queries, and for replay.

use prost::Message;
use rusqlite::{Connection, Row, params, params_from_iter, types::Value};
use std::collections::HashMap;
use warren_proto::v1::{Attempt, Targets, TaskInfo, TaskResult, TaskSpec, TaskState};

use super::PastTask;
use crate::model::{Progress, Submission, Submitter, TaskRow};

/// What the hub needs from the database to carry on where it stopped.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The next task id to hand out.
    pub(crate) next_task_id: u64,
    /// Every engine remembered: id, uuid and when it last registered.
    pub(crate) engines: Vec<(u32, String, i64)>,
    /// The highest engine id ever handed out.
    pub(crate) last_engine_id: u32,
    /// Tasks that had not ended, oldest first, with their attempts.
    pub(crate) live: Vec<(TaskRow, Vec<Attempt>)>,
    /// Sessions that were live (starting or idle), oldest first.
    pub(crate) sessions: Vec<crate::model::SessionRow>,
    /// The highest session id handed out.
    pub(crate) last_session_id: u64,
    /// What the history says of the tasks that live ones wait for and that are not live.
    pub(crate) past: HashMap<u64, PastTask>,
}

/// Which tasks `list` returns.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListFilter {
    /// Only these tasks; empty: any.
    pub(crate) task_ids: Vec<u64>,
    /// Only these states (as numbers); empty: all.
    pub(crate) states: Vec<i32>,
    /// Only this engine; 0: any.
    pub(crate) engine_id: u32,
    /// Only tasks with all of these labels.
    pub(crate) labels: HashMap<String, String>,
    /// Submitted at or after this (0: no bound).
    pub(crate) after_us: i64,
    /// Submitted before this (0: no bound).
    pub(crate) before_us: i64,
    /// Only ids below this (the page token).
    pub(crate) below_id: Option<u64>,
    /// At most this many.
    pub(crate) limit: usize,
}

/// A page of tasks.
#[derive(Debug, Default)]
pub(crate) struct ListPage {
    /// The tasks, newest first.
    pub(crate) tasks: Vec<TaskInfo>,
    /// Where the next page starts, if there is one.
    pub(crate) next_below: Option<u64>,
}

const TASK_COLUMNS: &str = "id, spec, pinned_engine, engine_labels, retries, submitter_uid,
    submitter_pid, submitted_us, state, reason, engine_id, attempt, engine_deaths, started_us,
    result, next_seq, output_bytes, kept_bytes, dropped_bytes, chunk_seq, session_id";

fn decode<M: Message + Default>(bytes: Option<Vec<u8>>) -> rusqlite::Result<Option<M>> {
    bytes
        .map(|b| M::decode(b.as_slice()))
        .transpose()
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
        })
}

fn task_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let spec: TaskSpec = decode(Some(row.get(1)?))?.unwrap_or_default();
    let engine_labels = decode::<Targets>(Some(row.get(3)?))?
        .unwrap_or_default()
        .engine_labels;
    let result: Option<TaskResult> = decode(row.get(14)?)?;
    let get_u64 = |i| row.get::<_, i64>(i).map(|v| v as u64);
    Ok(TaskRow {
        id: get_u64(0)?,
        asked: Submission {
            spec,
            pinned: row.get(2)?,
            engine_labels,
            labels: HashMap::new(),
            retries: row.get(4)?,
            submitter: Submitter {
                uid: row.get(5)?,
                pid: row.get(6)?,
            },
            submitted_us: row.get(7)?,
            session_id: row.get::<_, Option<i64>>(20)?.map(|id| id as u64),
            after: Vec::new(),
            after_ok: Vec::new(),
        },
        state: TaskState::try_from(row.get::<_, i32>(8)?).unwrap_or(TaskState::Unspecified),
        reason: row.get(9)?,
        engine_id: row.get(10)?,
        attempt: row.get(11)?,
        engine_deaths: row.get(12)?,
        started_us: row.get(13)?,
        result,
        progress: Progress {
            next_seq: get_u64(15)?,
            output_bytes: get_u64(16)?,
            kept_bytes: get_u64(17)?,
            dropped_bytes: get_u64(18)?,
            chunk_seq: get_u64(19)?,
            attempt: row.get(11)?,
        },
    })
}

/// Fills in what a row leaves out: the task's labels and dependencies.
fn complete(conn: &Connection, row: &mut TaskRow) -> rusqlite::Result<()> {
    row.asked.labels = labels(conn, row.id)?;
    (row.asked.after, row.asked.after_ok) = super::deps::of_task(conn, row.id)?;
    Ok(())
}

fn labels(conn: &Connection, task_id: u64) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM task_labels WHERE task_id = ?1")?;
    let rows = stmt.query_map([task_id as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Every attempt of a task, oldest first.
pub(super) fn attempts(conn: &Connection, task_id: u64) -> rusqlite::Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT number, engine_id, engine_uuid, hostname, assigned_us, ended_us, outcome
         FROM attempts WHERE task_id = ?1 ORDER BY number",
    )?;
    let rows = stmt.query_map([task_id as i64], |r| {
        Ok(Attempt {
            number: r.get(0)?,
            engine_id: r.get(1)?,
            engine_uuid: r.get(2)?,
            hostname: r.get(3)?,
            assigned_us: r.get(4)?,
            ended_us: r.get(5)?,
            outcome: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Reads what the hub needs at start.
pub(super) fn recover(conn: &Connection) -> rusqlite::Result<Recovered> {
    let next_task_id = super::deps::last_task_id(conn)? + 1;
    let mut stmt = conn.prepare("SELECT id, uuid, registered_us FROM engines ORDER BY id")?;
    let engines = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let last_engine_id: u32 = conn.query_row(
        "SELECT COALESCE((SELECT value FROM meta WHERE key = 'last_engine_id'), 0)",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN (?1, ?2, ?3) ORDER BY id"
    ))?;
    let mut live = stmt
        .query_map(
            params![
                TaskState::Queued as i32,
                TaskState::Running as i32,
                TaskState::Waiting as i32
            ],
            task_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut with_attempts = Vec::with_capacity(live.len());
    for mut row in live.drain(..) {
        complete(conn, &mut row)?;
        let attempts = attempts(conn, row.id)?;
        with_attempts.push((row, attempts));
    }
    let (sessions, last_session_id) = super::sessions::recover(conn)?;
    let live_ids: std::collections::HashSet<u64> =
        with_attempts.iter().map(|(row, _)| row.id).collect();
    let mut awaited: Vec<u64> = with_attempts
        .iter()
        .flat_map(|(row, _)| row.asked.after.iter().chain(&row.asked.after_ok))
        .copied()
        .filter(|id| !live_ids.contains(id))
        .collect();
    awaited.sort_unstable();
    awaited.dedup();
    Ok(Recovered {
        next_task_id,
        engines,
        last_engine_id,
        live: with_attempts,
        sessions,
        last_session_id,
        past: super::deps::past(conn, &awaited)?,
    })
}

/// One task's record, if the database has it.
pub(super) fn task_info(conn: &Connection, task_id: u64) -> rusqlite::Result<Option<TaskInfo>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?;
    let mut rows = stmt.query_map([task_id as i64], task_row)?;
    let Some(row) = rows.next().transpose()? else {
        return Ok(None);
    };
    let mut row = row;
    complete(conn, &mut row)?;
    let attempts = attempts(conn, task_id)?;
    Ok(Some(row.info(attempts)))
}

/// A page of tasks matching the filter, newest first.
pub(super) fn list(conn: &mut Connection, filter: &ListFilter) -> rusqlite::Result<ListPage> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.states.is_empty() {
        let marks = vec!["?"; filter.states.len()].join(", ");
        clauses.push(format!("state IN ({marks})"));
        values.extend(filter.states.iter().map(|s| Value::Integer(i64::from(*s))));
    }
    if !filter.task_ids.is_empty() {
        let marks = vec!["?"; filter.task_ids.len()].join(", ");
        clauses.push(format!("id IN ({marks})"));
        values.extend(filter.task_ids.iter().map(|&id| Value::Integer(id as i64)));
    }
    if filter.engine_id != 0 {
        clauses.push("engine_id = ?".into());
        values.push(Value::Integer(i64::from(filter.engine_id)));
    }
    if filter.after_us != 0 {
        clauses.push("submitted_us >= ?".into());
        values.push(Value::Integer(filter.after_us));
    }
    if filter.before_us != 0 {
        clauses.push("submitted_us < ?".into());
        values.push(Value::Integer(filter.before_us));
    }
    if let Some(below) = filter.below_id {
        clauses.push("id < ?".into());
        values.push(Value::Integer(below as i64));
    }
    for (key, value) in &filter.labels {
        clauses.push(
            "EXISTS (SELECT 1 FROM task_labels l WHERE l.task_id = tasks.id AND l.key = ? AND l.value = ?)"
                .into(),
        );
        values.push(Value::Text(key.clone()));
        values.push(Value::Text(value.clone()));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(Value::Integer(filter.limit as i64 + 1));
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks {filter_sql} ORDER BY id DESC LIMIT ?");
    let mut rows = {
        let mut stmt = conn.prepare(&sql)?;
        stmt.query_map(params_from_iter(values), task_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let next_below = if rows.len() > filter.limit {
        rows.truncate(filter.limit);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    let mut tasks = Vec::with_capacity(rows.len());
    for mut row in rows {
        complete(conn, &mut row)?;
        let attempts = attempts(conn, row.id)?;
        tasks.push(row.info(attempts));
    }
    Ok(ListPage { tasks, next_below })
}

/// The seq a task's next event would get: one past its last (an error if it has no row).
pub(super) fn next_seq(conn: &Connection, task_id: u64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT next_seq FROM tasks WHERE id = ?1",
        [task_id as i64],
        |r| r.get::<_, i64>(0),
    )
    .map(|seq| seq as u64)
}
