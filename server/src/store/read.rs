//! Reading the history back: for recovery at start, for queries, and for replay.

use prost::Message;
use rusqlite::{Connection, Row, params, params_from_iter, types::Value};
use std::collections::HashMap;
use warren_proto::v1::{
    Attempt, OutputGap, Targets, TaskEvent, TaskInfo, TaskResult, TaskSpec, TaskState,
};

use super::{Progress, TaskRow};
use crate::state::task::Submitter;
use crate::state::tasklog::Entry;

/// What the hub needs from the database to carry on where it stopped.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The next task id to hand out.
    pub next_task_id: u64,
    /// Every engine remembered: id, uuid and when it last registered.
    pub engines: Vec<(u32, String, i64)>,
    /// The highest engine id ever handed out.
    pub last_engine_id: u32,
    /// Tasks that had not ended, oldest first, with their attempts.
    pub live: Vec<(TaskRow, Vec<Attempt>)>,
}

/// Which tasks `list` returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only these states (as numbers); empty: all.
    pub states: Vec<i32>,
    /// Only this engine; 0: any.
    pub engine_id: u32,
    /// Only tasks with all of these labels.
    pub labels: HashMap<String, String>,
    /// Submitted at or after this (0: no bound).
    pub after_us: i64,
    /// Submitted before this (0: no bound).
    pub before_us: i64,
    /// Only ids below this (the page token).
    pub below_id: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

/// A page of tasks.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The tasks, newest first.
    pub tasks: Vec<TaskInfo>,
    /// Where the next page starts, if there is one.
    pub next_below: Option<u64>,
}

const TASK_COLUMNS: &str = "id, spec, pinned_engine, engine_labels, retries, submitter_uid,
    submitter_pid, submitted_us, state, reason, engine_id, attempt, engine_deaths, started_us,
    result, next_seq, output_bytes, kept_bytes, dropped_bytes, chunk_seq";

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
    let next_task_id: i64 =
        conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks", [], |r| {
            r.get(0)
        })?;
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
        "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN (?1, ?2) ORDER BY id"
    ))?;
    let mut live = stmt
        .query_map(
            params![TaskState::Queued as i32, TaskState::Running as i32],
            task_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut with_attempts = Vec::with_capacity(live.len());
    for mut row in live.drain(..) {
        row.labels = labels(conn, row.id)?;
        let attempts = attempts(conn, row.id)?;
        with_attempts.push((row, attempts));
    }
    Ok(Recovered {
        next_task_id: next_task_id as u64,
        engines,
        last_engine_id,
        live: with_attempts,
    })
}

/// One task's record, if the database has it.
pub fn task_info(conn: &Connection, task_id: u64) -> rusqlite::Result<Option<TaskInfo>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?;
    let mut rows = stmt.query_map([task_id as i64], task_row)?;
    let Some(row) = rows.next().transpose()? else {
        return Ok(None);
    };
    let mut row = row;
    row.labels = labels(conn, task_id)?;
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
        row.labels = labels(conn, row.id)?;
        let attempts = attempts(conn, row.id)?;
        tasks.push(row.info(attempts));
    }
    Ok(ListPage { tasks, next_below })
}

/// Events read from the database per call at most.
const EVENTS_PER_READ: usize = 256;

/// A task's kept events and recorded gaps from `from_seq` (below `below_seq`), in order, up to
/// about `max_bytes`; each entry comes with the cursor after it.
pub fn entries(
    conn: &Connection,
    task_id: u64,
    from_seq: u64,
    below_seq: u64,
    max_bytes: usize,
) -> rusqlite::Result<Vec<(Entry, u64)>> {
    let blob_error = |e: prost::DecodeError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    };
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, last_seq, bytes FROM gaps
         WHERE task_id = ?1 AND last_seq >= ?2 AND first_seq < ?3 ORDER BY first_seq",
    )?;
    let mut gaps: std::collections::VecDeque<OutputGap> = stmt
        .query_map(
            params![task_id as i64, from_seq as i64, below_seq as i64],
            |r| {
                Ok(OutputGap {
                    first_seq: r.get::<_, i64>(0)? as u64,
                    last_seq: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)? as u64,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, event FROM events WHERE task_id = ?1 AND seq >= ?2 AND seq < ?3
         ORDER BY seq LIMIT ?4",
    )?;
    // Rows are read only up to the byte budget: output events can be a MiB each, and reading
    // the whole LIMIT of them would hold hundreds of MiB for a one-MiB answer.
    let mut events = std::collections::VecDeque::new();
    let mut read_bytes = 0;
    let mut rows = stmt.query(params![
        task_id as i64,
        from_seq as i64,
        below_seq as i64,
        EVENTS_PER_READ as i64
    ])?;
    while let Some(row) = rows.next()? {
        let blob: Vec<u8> = row.get(1)?;
        read_bytes += blob.len();
        events.push_back((row.get::<_, i64>(0)? as u64, blob));
        if read_bytes >= max_bytes {
            break;
        }
    }
    // If the read was cut short, what lies past the last event read is unknown, not a gap.
    let cut_short = read_bytes >= max_bytes || events.len() == EVENTS_PER_READ;
    let horizon = match events.back() {
        Some((seq, _)) if cut_short => seq + 1,
        _ => below_seq,
    };

    let mut out = Vec::new();
    let mut cursor = from_seq;
    let mut bytes = 0;
    while cursor < horizon && bytes < max_bytes {
        if let Some(gap) = gaps.front().copied().filter(|g| g.first_seq <= cursor) {
            gaps.pop_front();
            if gap.last_seq >= cursor {
                out.push((Entry::Gap(gap), gap.last_seq + 1));
                cursor = gap.last_seq + 1;
            }
            continue;
        }
        match events.front() {
            Some((seq, _)) if *seq < cursor => {
                events.pop_front();
            }
            Some((seq, _)) if *seq == cursor => {
                let Some((_, blob)) = events.pop_front() else {
                    break;
                };
                bytes += blob.len();
                out.push((
                    Entry::Event(TaskEvent::decode(blob.as_slice()).map_err(blob_error)?),
                    cursor + 1,
                ));
                cursor += 1;
            }
            next => {
                // Neither kept nor in a recorded gap: report the hole rather than stall on it.
                let next = next
                    .map(|(seq, _)| *seq)
                    .into_iter()
                    .chain(gaps.front().map(|g| g.first_seq))
                    .chain([horizon])
                    .min()
                    .unwrap_or(horizon);
                out.push((
                    Entry::Gap(OutputGap {
                        first_seq: cursor,
                        last_seq: next - 1,
                        bytes: 0,
                    }),
                    next,
                ));
                cursor = next;
            }
        }
    }
    Ok(out)
}

/// Which finished tasks to delete.
#[derive(Clone, Debug)]
pub enum PurgeSelector {
    /// Those that finished before this time.
    FinishedBefore(i64),
    /// These ids (each must be finished).
    Ids(Vec<u64>),
    /// All finished ones.
    AllFinished,
}

/// Deletes finished tasks; returns how many and how many kept output bytes went with them.
pub fn purge(conn: &mut Connection, selector: &PurgeSelector) -> rusqlite::Result<(u64, u64)> {
    let live = format!(
        "state NOT IN ({}, {})",
        TaskState::Queued as i32,
        TaskState::Running as i32
    );
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
pub fn enforce_retention(
    conn: &mut Connection,
    now_us: i64,
    max_age_us: i64,
    max_bytes: u64,
) -> rusqlite::Result<(u64, u64)> {
    let (mut count, mut bytes) = purge(conn, &PurgeSelector::FinishedBefore(now_us - max_age_us))?;
    let live = format!(
        "state NOT IN ({}, {})",
        TaskState::Queued as i32,
        TaskState::Running as i32
    );
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

fn delete_tasks(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<(u64, u64)> {
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let tx = conn.transaction()?;
    let mut bytes = 0u64;
    for &id in ids {
        let kept: i64 = tx.query_row("SELECT kept_bytes FROM tasks WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
        bytes += kept as u64;
        for table in ["events", "gaps", "attempts", "task_labels"] {
            tx.execute(&format!("DELETE FROM {table} WHERE task_id = ?1"), [id])?;
        }
        tx.execute("DELETE FROM tasks WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    // Give freed pages back to the filesystem a little at a time.
    conn.execute_batch("PRAGMA incremental_vacuum(4096)")?;
    Ok((ids.len() as u64, bytes))
}
