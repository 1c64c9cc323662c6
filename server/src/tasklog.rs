//! One task's events, kept for replay and held briefly for live followers.
//!
//! Every event goes into `recent`, a window bounded in bytes that live followers read from.
//! Events within the task's output cap are also kept for good; output past the cap is only
//! in the window, and when it leaves the window it is recorded as a gap: a follower that falls
//! that far behind is told exactly which events and how many bytes it missed. The engine is
//! never held up by a follower, and no task holds more than its cap plus the window.

use std::collections::VecDeque;
use warren_proto::v1::{OutputGap, TaskEvent, task_event::Kind};

/// What an event costs beyond its output bytes, so that a flood of tiny chunks is bounded too.
const EVENT_OVERHEAD: u64 = 128;

/// How much of a task's output a log keeps.
#[derive(Clone, Copy, Debug)]
pub struct LogLimits {
    /// Output bytes kept for replay.
    pub keep: u64,
    /// Bytes held for live followers past the cap.
    pub window: u64,
}

/// What a follower reads next.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// An event.
    Event(TaskEvent),
    /// Events that were not kept.
    Gap(OutputGap),
}

/// A task's events by sequence number.
#[derive(Debug)]
pub struct TaskLog {
    limits: LogLimits,
    /// Every event kept for replay, by seq.
    kept: Vec<TaskEvent>,
    /// The latest events, seqs `recent_start..next_seq`, with whether each is also kept.
    recent: VecDeque<(TaskEvent, bool)>,
    recent_start: u64,
    recent_cost: u64,
    /// Ranges of events that left the window without being kept.
    gaps: Vec<OutputGap>,
    next_seq: u64,
    kept_cost: u64,
    capped: bool,
    output_bytes: u64,
    dropped_bytes: u64,
}

fn output_len(event: &TaskEvent) -> u64 {
    match &event.kind {
        Some(Kind::Output(chunk)) => chunk.data.len() as u64,
        _ => 0,
    }
}

impl TaskLog {
    /// An empty log.
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            kept: Vec::new(),
            recent: VecDeque::new(),
            recent_start: 0,
            recent_cost: 0,
            gaps: Vec::new(),
            next_seq: 0,
            kept_cost: 0,
            capped: false,
            output_bytes: 0,
            dropped_bytes: 0,
        }
    }

    /// Appends an event, giving it the next sequence number.
    pub fn push(&mut self, mut event: TaskEvent) {
        event.seq = self.next_seq;
        self.next_seq += 1;
        let is_output = matches!(event.kind, Some(Kind::Output(_)));
        let len = output_len(&event);
        let cost = len + EVENT_OVERHEAD;
        self.output_bytes += len;
        // Kept output is a prefix: once one chunk is over the cap, so is every later one.
        let keep = !is_output || (!self.capped && self.kept_cost + cost <= self.limits.keep);
        if !keep {
            self.capped = true;
            self.dropped_bytes += len;
        }
        if keep {
            self.kept_cost += cost;
            self.kept.push(event.clone());
        }
        self.recent.push_back((event, keep));
        self.recent_cost += cost;
        while self.recent_cost > self.limits.window && self.recent.len() > 1 {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some((event, kept)) = self.recent.pop_front() else {
            return;
        };
        self.recent_start += 1;
        let len = output_len(&event);
        self.recent_cost -= len + EVENT_OVERHEAD;
        if kept {
            return;
        }
        match self.gaps.last_mut() {
            Some(gap) if gap.last_seq + 1 == event.seq => {
                gap.last_seq = event.seq;
                gap.bytes += len;
            }
            _ => self.gaps.push(OutputGap {
                first_seq: event.seq,
                last_seq: event.seq,
                bytes: len,
            }),
        }
    }

    /// Frees the live window once the task is final: only what is kept remains readable.
    pub fn seal(&mut self) {
        while !self.recent.is_empty() {
            self.evict_oldest();
        }
    }

    /// The entry at `cursor` and the cursor after it, or `None` if no event has that seq yet.
    pub fn read(&self, cursor: u64) -> Option<(Entry, u64)> {
        if cursor >= self.next_seq {
            return None;
        }
        if cursor >= self.recent_start {
            let (event, _) = &self.recent[(cursor - self.recent_start) as usize];
            return Some((Entry::Event(event.clone()), cursor + 1));
        }
        if let Ok(i) = self.kept.binary_search_by_key(&cursor, |e| e.seq) {
            return Some((Entry::Event(self.kept[i].clone()), cursor + 1));
        }
        let i = self.gaps.partition_point(|g| g.last_seq < cursor);
        match self.gaps.get(i) {
            Some(gap) if gap.first_seq <= cursor => Some((Entry::Gap(*gap), gap.last_seq + 1)),
            // Unreachable while the invariants hold; skip one event rather than stall.
            _ => Some((
                Entry::Gap(OutputGap {
                    first_seq: cursor,
                    last_seq: cursor,
                    bytes: 0,
                }),
                cursor + 1,
            )),
        }
    }

    /// The seq the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Output bytes the task has written.
    pub fn output_bytes(&self) -> u64 {
        self.output_bytes
    }

    /// Output bytes past the cap, which were streamed but not kept.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::v1::{OutputChunk, StateChange};

    fn output(n: usize) -> TaskEvent {
        TaskEvent {
            kind: Some(Kind::Output(OutputChunk {
                stream: 1,
                data: vec![b'x'; n].into(),
            })),
            ..Default::default()
        }
    }

    fn state() -> TaskEvent {
        TaskEvent {
            kind: Some(Kind::State(StateChange::default())),
            ..Default::default()
        }
    }

    fn read_all(log: &TaskLog, from: u64) -> Vec<Entry> {
        let mut cursor = from;
        let mut entries = Vec::new();
        while let Some((entry, next)) = log.read(cursor) {
            entries.push(entry);
            cursor = next;
        }
        entries
    }

    #[test]
    fn everything_under_the_cap_replays_from_any_seq() {
        let mut log = TaskLog::new(LogLimits {
            keep: 1 << 20,
            window: 1000,
        });
        log.push(state());
        for _ in 0..50 {
            log.push(output(100));
        }
        log.seal();
        let entries = read_all(&log, 0);
        assert_eq!(entries.len(), 51);
        assert!(entries.iter().all(|e| matches!(e, Entry::Event(_))));
        let from_ten = read_all(&log, 10);
        assert_eq!(from_ten.len(), 41);
        assert!(matches!(&from_ten[0], Entry::Event(e) if e.seq == 10));
        assert_eq!(log.dropped_bytes(), 0);
        assert_eq!(log.output_bytes(), 5000);
    }

    #[test]
    fn output_past_the_cap_becomes_one_exact_gap() {
        let mut log = TaskLog::new(LogLimits {
            keep: 3 * (100 + EVENT_OVERHEAD),
            window: 2 * (100 + EVENT_OVERHEAD),
        });
        log.push(state()); // seq 0, kept
        for _ in 0..10 {
            log.push(output(100)); // seqs 1..=10; 1..=2 kept (the state event used some budget)
        }
        // A live follower at the tail still sees the newest events.
        assert!(matches!(log.read(10), Some((Entry::Event(e), 11)) if e.seq == 10));
        log.push(state()); // seq 11: final events are always kept
        log.seal();
        let entries = read_all(&log, 0);
        let gaps: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Gap(g) => Some(*g),
                _ => None,
            })
            .collect();
        assert_eq!(gaps.len(), 1, "{entries:?}");
        assert_eq!(gaps[0].first_seq, 3);
        assert_eq!(gaps[0].last_seq, 10);
        assert_eq!(gaps[0].bytes, 800);
        assert_eq!(log.dropped_bytes(), 800);
        assert!(matches!(entries.last(), Some(Entry::Event(e)) if e.seq == 11));
        // Starting inside the gap reports the whole gap, then goes on.
        assert!(matches!(log.read(5), Some((Entry::Gap(g), 11)) if g.first_seq == 3));
    }

    #[test]
    fn the_window_bounds_memory_however_small_the_chunks() {
        let mut log = TaskLog::new(LogLimits {
            keep: 0,
            window: 10 * (1 + EVENT_OVERHEAD),
        });
        for _ in 0..100_000 {
            log.push(output(1));
        }
        assert!(log.recent.len() <= 10);
        assert_eq!(log.gaps.len(), 1);
        assert_eq!(log.dropped_bytes(), 100_000);
    }
}
