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
        "SELECT e.seq, e.event, s.offset, s.len FROM events e
         LEFT JOIN output_segments s ON s.task_id = e.task_id AND s.seq = e.seq
         WHERE e.task_id = ?1 AND e.seq >= ?2 AND e.seq < ?3
         ORDER BY e.seq LIMIT ?4",
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
        // Output kept in a segment file: where its bytes are.
        let place = match (row.get::<_, Option<i64>>(2)?, row.get::<_, Option<i64>>(3)?) {
            (Some(offset), Some(len)) => Some((offset as u64, len as usize)),
            _ => None,
        };
        read_bytes += blob.len() + place.map_or(0, |(_, len)| len);
        events.push_back((row.get::<_, i64>(0)? as u64, blob, place));
        if read_bytes >= max_bytes {
            break;
        }
    }
    // If the read was cut short, what lies past the last event read is unknown, not a gap.
    let cut_short = read_bytes >= max_bytes || events.len() == EVENTS_PER_READ;
    let horizon = match events.back() {
        Some((seq, ..)) if cut_short => seq + 1,
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
            Some((seq, ..)) if *seq < cursor => {
                events.pop_front();
            }
            Some((seq, ..)) if *seq == cursor => {
                let Some((_, blob, place)) = events.pop_front() else {
                    break;
                };
                let mut event = TaskEvent::decode(blob.as_slice()).map_err(blob_error)?;
                bytes += blob.len();
                if let Some(place) = place {
                    super::segments::fill(conn, task_id, place, &mut event)?;
                    bytes += place.1;
                }
                out.push((Entry::Event(event), cursor + 1));
                cursor += 1;
            }
            next => {
                // Neither kept nor in a recorded gap: report the hole rather than stall on it.
                let next = next
                    .map(|(seq, ..)| *seq)
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
