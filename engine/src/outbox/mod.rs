//! One task's output that the hub has not yet made safe: numbered chunks, the oldest in
//! memory up to a bound, the rest in a spill file of mode 0600.
//!
//! Chunks are numbered from 1 per task attempt. A chunk leaves only when the hub acknowledges
//! it (after committing it), so a hub that dies loses nothing: the engine sends everything
//! after the last acknowledgement again, and the hub drops what it already had. While the hub
//! is connected a full memory bound makes the task wait (backpressure); while it is away,
//! output goes to the spill file instead, so tasks keep running.
//!
//! The outbox only keeps the books. The file work it needs, a [`SpillWrite`] or a
//! [`SpillRead`], it hands out to be done off the async runtime, one at a time, and takes the
//! outcome back ([`Outbox::written`], [`Outbox::refilled`]); until then it is busy, and output
//! that would need the file waits. A chunk counts as taken only once it is in memory or
//! written, so a failed write loses nothing either: the task waits and tries again.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub mod file;

use file::{Appended, ReadBack, SpillFile, SpillRead, SpillWrite};

/// One chunk of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Its number, from 1.
    pub seq: u64,
    /// 1 for stdout, 2 for stderr.
    pub stream: i32,
    /// The bytes.
    pub data: Bytes,
}

/// Where a new chunk went.
#[derive(Debug)]
pub enum Pushed {
    /// Taken.
    Taken,
    /// Memory is full and the hub is connected, or the spill file is busy: wait for room and
    /// push again.
    Full,
    /// It goes to the spill file: do this write, then hand its outcome to [`Outbox::written`].
    Spill(SpillWrite),
}

/// Chunks in the spill file: its unread records.
#[derive(Debug)]
struct Spill {
    file: Arc<SpillFile>,
    read_pos: u64,
    write_pos: u64,
    records: u64,
    bytes: u64,
}

/// A task's unacknowledged output.
#[derive(Debug)]
pub struct Outbox {
    memory_limit: usize,
    spill_path: PathBuf,
    next_seq: u64,
    acked: u64,
    memory: VecDeque<Chunk>,
    memory_bytes: usize,
    spill: Option<Spill>,
    /// A write or read of the spill file is under way.
    busy: bool,
}

impl Outbox {
    /// An empty outbox that spills to `spill_path` when needed.
    pub fn new(memory_limit: usize, spill_path: PathBuf) -> Self {
        Self {
            memory_limit,
            spill_path,
            next_seq: 1,
            acked: 0,
            memory: VecDeque::new(),
            memory_bytes: 0,
            spill: None,
            busy: false,
        }
    }

    /// Adds a chunk: to memory if there is room, else to the spill file if `spill` (the hub
    /// is away) and the file is free, else refuses it for now.
    pub fn push(&mut self, stream: i32, data: Bytes, spill: bool) -> Pushed {
        let fits = self.spill.is_none()
            && (self.memory.is_empty() || self.memory_bytes + data.len() <= self.memory_limit);
        let chunk = Chunk {
            seq: self.next_seq,
            stream,
            data,
        };
        if fits {
            self.memory_bytes += chunk.data.len();
            self.memory.push_back(chunk);
            self.next_seq += 1;
            return Pushed::Taken;
        }
        if !spill || self.busy {
            return Pushed::Full;
        }
        self.busy = true;
        let path = &self.spill_path;
        let spill = self.spill.get_or_insert_with(|| Spill {
            file: SpillFile::new(path.clone()),
            read_pos: 0,
            write_pos: 0,
            records: 0,
            bytes: 0,
        });
        Pushed::Spill(SpillWrite {
            file: spill.file.clone(),
            at: spill.write_pos,
            chunk,
        })
    }

    /// The outcome of the [`SpillWrite`] that [`Outbox::push`] asked for; on success the chunk
    /// is taken. Returns a read to do next, if any.
    pub fn written(&mut self, outcome: &io::Result<Appended>) -> Option<SpillRead> {
        self.busy = false;
        if let Some(spill) = &mut self.spill {
            match outcome {
                Ok(appended) => {
                    spill.write_pos += appended.record;
                    spill.records += 1;
                    spill.bytes += appended.data;
                    self.next_seq += 1;
                }
                Err(_) if spill.records == 0 => self.spill = None,
                Err(_) => {}
            }
        }
        self.next_read()
    }

    /// The hub has every chunk up to `seq`: forget them. Returns a read to do, if spilled
    /// chunks can now come back into memory.
    pub fn ack(&mut self, seq: u64) -> Option<SpillRead> {
        self.acked = self.acked.max(seq);
        while self.memory.front().is_some_and(|c| c.seq <= self.acked) {
            if let Some(chunk) = self.memory.pop_front() {
                self.memory_bytes -= chunk.data.len();
            }
        }
        self.next_read()
    }

    /// The outcome of a [`SpillRead`]: the chunks come into memory (those the hub already has
    /// are dropped). Returns another read to do, if memory still has room.
    pub fn refilled(&mut self, outcome: io::Result<ReadBack>) -> Option<SpillRead> {
        self.busy = false;
        let spill = self.spill.as_mut()?;
        let back = outcome.ok()?;
        spill.read_pos = back.next;
        spill.records -= back.chunks.len() as u64;
        for chunk in back.chunks {
            spill.bytes -= chunk.data.len() as u64;
            if chunk.seq > self.acked {
                self.memory_bytes += chunk.data.len();
                self.memory.push_back(chunk);
            }
        }
        if spill.records == 0 {
            // The last handle to the file goes with it, and the file with that.
            self.spill = None;
        }
        self.next_read()
    }

    /// A read of spilled chunks, if there are some, memory has room and the file is free.
    fn next_read(&mut self) -> Option<SpillRead> {
        let spill = self.spill.as_ref()?;
        let full = !self.memory.is_empty() && self.memory_bytes >= self.memory_limit;
        if self.busy || full || spill.records == 0 {
            return None;
        }
        self.busy = true;
        Some(SpillRead {
            file: spill.file.clone(),
            at: spill.read_pos,
            records: spill.records,
            budget: self.memory_limit.saturating_sub(self.memory_bytes),
        })
    }

    /// Chunks in memory after `seq`, in order, to send.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Chunk> {
        // In seq order, so a search finds the first: sending must not rescan what waits.
        let first = self.memory.partition_point(|c| c.seq <= seq);
        self.memory.range(first..)
    }

    /// How many chunks there have been in all.
    pub fn produced(&self) -> u64 {
        self.next_seq - 1
    }

    /// The highest chunk the hub has acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Bytes held in the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.bytes)
    }

    /// Whether it holds a spill file (which dropping it removes: blocking file I/O).
    pub fn has_spill_file(&self) -> bool {
        self.spill.is_some()
    }
}

#[cfg(test)]
mod tests;
