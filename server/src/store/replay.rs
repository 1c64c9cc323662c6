//! Replay: a task's kept events and recorded gaps, in order, read a bounded batch at a time.

use prost::Message;
use rusqlite::{Connection, params};
use warren_proto::v1::{OutputGap, TaskEvent};

use crate::model::Entry;

/// Events read from the database per call at most.
const EVENTS_PER_READ: usize = 256;

/// A task's kept events and recorded gaps from `from_seq` (below `below_seq`), in order, up to
/// about `max_bytes`; each entry comes with the cursor after it.
pub(super) fn entries(
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
