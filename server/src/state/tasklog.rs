//! One live task's events: sequence numbers, the output cap, and a window for followers.
//!
//! Every event goes into `recent`, a window bounded in bytes that live followers read from.
//! Output within the task's cap is also kept in the database; output past the cap is not, and
//! is recorded as a gap, so a later reader is told exactly which events and how many bytes it
//! misses. An event leaves the window only once the database has it (or it was never to be
//! kept), so a follower that falls behind the window reads on from the database and never
//! holds up the engine.

use std::collections::VecDeque;
use warren_proto::v1::{OutputGap, TaskEvent, task_event::Kind};

use crate::model::{Entry, Progress};

/// What an event costs in memory beyond its output bytes, so a flood of tiny chunks is bounded.
const EVENT_OVERHEAD: u64 = 128;

/// How much of a task's output is kept and held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogLimits {
    /// Output bytes kept for replay (in the database).
    pub(crate) keep: u64,
    /// Bytes of recent events held in memory for live followers.
    pub(crate) window: u64,
}

/// Where the event at a cursor is.
#[derive(Debug)]
pub(super) enum Read {
    /// In the window: here it is, and the cursor after it.
    Ready(Entry, u64),
    /// Older than the window: in the database, below this seq.
    Stored {
        /// The first seq still in the window.
        below: u64,
    },
    /// Not there yet.
    Pending,
}

/// What the database should keep of an appended output event.
#[derive(Debug)]
pub(super) enum Persist {
    /// The event itself.
    Event(TaskEvent),
    /// Nothing but the gap it now belongs to.
    Gap(OutputGap),
}

/// A live task's events.
#[derive(Debug)]
pub(super) struct TaskLog {
    limits: LogLimits,
    recent: VecDeque<TaskEvent>,
    recent_start: u64,
    recent_cost: u64,
    /// Seqs below this are visible to followers.
    visible_end: u64,
    /// The seq the next event gets (one past `visible_end` while a final event is pending).
    next_seq: u64,
    /// Seqs below this are in the database (or were never to be kept).
    committed_end: u64,
    capped: bool,
    open_gap: Option<OutputGap>,
    /// The most advanced follower's cursor.
    lead: Option<u64>,
    output_bytes: u64,
    kept_bytes: u64,
    dropped_bytes: u64,
}

fn output_len(kind: &Kind) -> u64 {
    match kind {
        Kind::Output(chunk) => chunk.data.len() as u64,
        _ => 0,
    }
}

/// What an event costs in memory: its output bytes and a little for the rest (the window and
/// the followers' budget count alike).
pub(super) fn cost(event: &TaskEvent) -> u64 {
    event.kind.as_ref().map_or(0, output_len) + EVENT_OVERHEAD
}

impl TaskLog {
    /// A log that goes on from `progress` (all zero for a new task).
    pub(super) fn resume(limits: LogLimits, progress: &Progress) -> Self {
        Self {
            limits,
            recent: VecDeque::new(),
            recent_start: progress.next_seq,
            recent_cost: 0,
            visible_end: progress.next_seq,
            next_seq: progress.next_seq,
            committed_end: progress.next_seq,
            capped: progress.dropped_bytes > 0,
            open_gap: None,
            lead: None,
            output_bytes: progress.output_bytes,
            kept_bytes: progress.kept_bytes,
            dropped_bytes: progress.dropped_bytes,
        }
    }

    fn event(&mut self, task_id: u64, engine_id: u32, kind: Kind) -> TaskEvent {
        let event = TaskEvent {
            task_id,
            engine_id,
            seq: self.next_seq,
            time_us: warren_proto::now_us(),
            kind: Some(kind),
        };
        self.next_seq += 1;
        event
    }

    /// Appends an event, visible at once; says what the database should keep of it.
    pub(super) fn append(&mut self, task_id: u64, engine_id: u32, kind: Kind) -> Persist {
        let len = output_len(&kind);
        let is_output = matches!(kind, Kind::Output(_));
        let event = self.event(task_id, engine_id, kind);
        self.output_bytes += len;
        // Kept output is a prefix: once one chunk is over the cap, so is every later one.
        let keep = !is_output || (!self.capped && self.kept_bytes + len <= self.limits.keep);
        let persist = if keep {
            self.kept_bytes += len;
            self.open_gap = None;
            Persist::Event(event.clone())
        } else {
            self.capped = true;
            self.dropped_bytes += len;
            let gap = match &mut self.open_gap {
                Some(gap) if gap.last_seq + 1 == event.seq => {
                    gap.last_seq = event.seq;
                    gap.bytes += len;
                    *gap
                }
                open => *open.insert(OutputGap {
                    first_seq: event.seq,
                    last_seq: event.seq,
                    bytes: len,
                }),
            };
            Persist::Gap(gap)
        };
        self.show(event);
        persist
    }

    /// Builds the final event, with the next seq, without showing it: it is shown
    /// ([`TaskLog::publish`]) once the database has it.
    pub(super) fn prepare_final(&mut self, task_id: u64, engine_id: u32, kind: Kind) -> TaskEvent {
        self.event(task_id, engine_id, kind)
    }

    /// Shows a prepared final event.
    pub(super) fn publish(&mut self, event: TaskEvent) {
        self.show(event);
    }

    fn show(&mut self, event: TaskEvent) {
        self.recent_cost += cost(&event);
        self.visible_end = event.seq + 1;
        self.recent.push_back(event);
        self.trim();
    }

    /// The database now has every event below `next_seq`.
    pub(super) fn committed(&mut self, next_seq: u64) {
        self.committed_end = self.committed_end.max(next_seq);
        self.trim();
    }

    /// The cursor of the task's lead follower, if it has any: the window keeps what that
    /// follower has not read yet, however long it grows (the hub stops acknowledging the
    /// engine's output meanwhile, which holds the task back). A slower follower falls out of
    /// the window and reads on from the database.
    pub(super) fn set_lead(&mut self, lead: Option<u64>) {
        self.lead = lead;
        self.trim();
    }

    /// Whether the window is over its size, waiting for the lead follower.
    pub(super) fn backlogged(&self) -> bool {
        self.recent_cost > self.limits.window
    }

    fn trim(&mut self) {
        let keep_from = self.committed_end.min(self.lead.unwrap_or(u64::MAX));
        while self.recent_cost > self.limits.window && self.recent_start < keep_from {
            let Some(event) = self.recent.pop_front() else {
                break;
            };
            self.recent_start += 1;
            self.recent_cost -= cost(&event);
        }
    }

    /// Where the event at `cursor` is.
    pub(super) fn read(&self, cursor: u64) -> Read {
        if cursor >= self.visible_end {
            Read::Pending
        } else if cursor >= self.recent_start {
            let event = self.recent[(cursor - self.recent_start) as usize].clone();
            Read::Ready(Entry::Event(event), cursor + 1)
        } else {
            Read::Stored {
                below: self.recent_start,
            }
        }
    }

    /// The seq below which the hub knows the database has every event.
    #[cfg(test)]
    pub(super) fn committed_end(&self) -> u64 {
        self.committed_end
    }

    /// The first seq still in the window.
    pub(super) fn window_start(&self) -> u64 {
        self.recent_start
    }

    /// Output bytes of the window's events up to seq `last` (the part of a recorded gap that
    /// the window still shows in full).
    pub(super) fn window_output_bytes_through(&self, last: u64) -> u64 {
        let take = (last + 1).saturating_sub(self.recent_start);
        self.recent
            .iter()
            .take(usize::try_from(take).unwrap_or(usize::MAX))
            .filter_map(|event| event.kind.as_ref())
            .map(output_len)
            .sum()
    }

    /// The seq the next event gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The counters, with the engine's chunk number in an attempt, as the database keeps them.
    pub(super) fn progress(&self, attempt: u32, chunk_seq: u64) -> Progress {
        Progress {
            attempt,
            next_seq: self.next_seq,
            output_bytes: self.output_bytes,
            kept_bytes: self.kept_bytes,
            dropped_bytes: self.dropped_bytes,
            chunk_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::v1::{OutputChunk, StateChange};

    fn output(n: usize) -> Kind {
        Kind::Output(OutputChunk {
            stream: 1,
            data: vec![b'x'; n].into(),
        })
    }

    fn state() -> Kind {
        Kind::State(StateChange::default())
    }

    fn log(keep: u64, window: u64) -> TaskLog {
        TaskLog::resume(LogLimits { keep, window }, &Progress::default())
    }

    #[test]
    fn output_past_the_cap_is_one_growing_gap() {
        let mut log = log(250, 1 << 20);
        assert!(matches!(log.append(1, 1, state()), Persist::Event(_)));
        let persisted: Vec<_> = (0..5).map(|_| log.append(1, 1, output(100))).collect();
        assert!(matches!(persisted[0], Persist::Event(_)));
        assert!(matches!(persisted[1], Persist::Event(_)));
        // 300 > 250: the third chunk and every later one are not kept.
        let Persist::Gap(gap) = persisted[4] else {
            panic!("{persisted:?}")
        };
        assert_eq!((gap.first_seq, gap.last_seq, gap.bytes), (3, 5, 300));
        assert_eq!(log.progress(0, 0).dropped_bytes, 300);
        assert_eq!(log.progress(0, 0).kept_bytes, 200);
        // A later state change is kept, and ends the gap.
        assert!(matches!(log.append(1, 1, state()), Persist::Event(_)));
        let Persist::Gap(gap) = log.append(1, 1, output(1)) else {
            panic!("past the cap")
        };
        assert_eq!(gap.first_seq, 7);
    }

    #[test]
    fn nothing_leaves_the_window_before_it_is_committed() {
        let window = 2 * (100 + EVENT_OVERHEAD);
        let mut log = log(1 << 20, window);
        for _ in 0..10 {
            log.append(1, 1, output(100));
        }
        // Nothing committed: every event is still readable from memory.
        assert!(matches!(log.read(0), Read::Ready(_, 1)));
        log.committed(8);
        // Trimmed down to the window, but never past what is committed.
        assert!(matches!(log.read(7), Read::Stored { below: 8 }));
        assert!(matches!(log.read(8), Read::Ready(_, 9)));
        assert!(matches!(log.read(10), Read::Pending));
    }

    #[test]
    fn a_final_event_is_shown_only_when_published() {
        let mut log = log(1 << 20, 1 << 20);
        log.append(1, 1, state());
        let last = log.prepare_final(1, 1, state());
        assert_eq!(last.seq, 1);
        assert!(matches!(log.read(1), Read::Pending));
        log.publish(last);
        assert!(matches!(log.read(1), Read::Ready(_, 2)));
    }

    #[test]
    fn the_window_bounds_memory_however_small_the_chunks() {
        let mut log = log(0, 10 * (1 + EVENT_OVERHEAD));
        for i in 0..100_000u64 {
            log.append(1, 1, output(1));
            log.committed(i + 1);
        }
        assert!(log.recent.len() <= 10);
        assert_eq!(log.progress(0, 0).dropped_bytes, 100_000);
    }
}
