//! Sessions in the history: their rows, what recovery needs of them, and the lookups of
//! closed ones (live sessions are answered from memory).

use prost::Message;
use rusqlite::{Connection, Row, Transaction, params};
use warren_proto::v1::{SessionSpec, SessionState};

use crate::model::{SessionExit, SessionRow, Submitter};

const COLUMNS: &str = "id, group_name, spec, engine_id, state, opener_uid, opener_pid,
    opened_us, ended_us, reason, exit_code, exit_signal, pid, banner, restarts";

/// Inserts or updates a session's row.
pub(super) fn upsert(tx: &Transaction<'_>, row: &SessionRow) -> rusqlite::Result<()> {
    let (code, signal) = match row.exit {
        Some(SessionExit::Code(code)) => (Some(code), None),
        Some(SessionExit::Signal(signal)) => (None, Some(signal)),
        None => (None, None),
    };
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO sessions ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        row.id as i64,
        row.group,
        row.spec.encode_to_vec(),
        row.engine_id,
        row.state as i32,
        row.opener.uid,
        row.opener.pid,
        row.opened_us,
        row.ended_us,
        row.reason,
        code,
        signal,
        row.pid,
        row.banner,
        row.restarts,
    ])?;
    Ok(())
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let spec: Vec<u8> = row.get(2)?;
    let spec = SessionSpec::decode(spec.as_slice()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    let exit = match (
        row.get::<_, Option<i32>>(10)?,
        row.get::<_, Option<i32>>(11)?,
    ) {
        (Some(code), _) => Some(SessionExit::Code(code)),
        (None, Some(signal)) => Some(SessionExit::Signal(signal)),
        (None, None) => None,
    };
    Ok(SessionRow {
        id: row.get::<_, i64>(0)? as u64,
        group: row.get(1)?,
        spec,
        engine_id: row.get(3)?,
        state: SessionState::try_from(row.get::<_, i32>(4)?).unwrap_or(SessionState::Dead),
        opener: Submitter {
            uid: row.get(5)?,
            pid: row.get(6)?,
        },
        opened_us: row.get(7)?,
        ended_us: row.get(8)?,
        reason: row.get(9)?,
        exit,
        pid: row.get(12)?,
        banner: row.get(13)?,
        restarts: row.get(14)?,
    })
}

/// Sessions that were not closed when the hub stopped (dead ones too: they can be restarted),
/// oldest first, and the highest session id ever handed out.
pub(super) fn recover(conn: &Connection) -> rusqlite::Result<(Vec<SessionRow>, u64)> {
    let last: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM sessions", [], |r| {
        r.get(0)
    })?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE state != ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([SessionState::Closed as i32], session_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, last as u64))
}

/// Deletes closed sessions that ended before `before_us`; returns how many.
pub(super) fn forget_closed(conn: &Connection, before_us: i64) -> rusqlite::Result<u64> {
    let deleted = conn
        .prepare_cached("DELETE FROM sessions WHERE state = ?1 AND ended_us < ?2")?
        .execute(params![SessionState::Closed as i32, before_us])?;
    Ok(deleted as u64)
}

/// The most closed sessions one listing returns.
const MAX_CLOSED_LISTED: i64 = 1000;

/// Closed sessions, newest first (of `group` only, if not empty); at most a thousand.
pub(super) fn closed(conn: &Connection, group: &str) -> rusqlite::Result<Vec<SessionRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE state = ?1 AND (?2 = '' OR group_name = ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    stmt.query_map(
        params![SessionState::Closed as i32, group, MAX_CLOSED_LISTED],
        session_row,
    )?
    .collect()
}

/// One session's row, if the history has it.
pub(super) fn get(conn: &Connection, id: u64) -> rusqlite::Result<Option<SessionRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?;
    let mut rows = stmt.query_map([id as i64], session_row)?;
    rows.next().transpose()
}
