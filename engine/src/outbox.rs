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

use crate::spill::file::{Appended, ReadBack, SpillFile, SpillRead, SpillWrite};

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
        self.memory.iter().filter(move |c| c.seq > seq)
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
mod tests {
    use super::*;

    /// An outbox of `limit` bytes in memory, spilling into a new temp dir.
    fn outbox(limit: usize) -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::new(limit, dir.path().join("spill"));
        (dir, outbox)
    }

    fn seqs(outbox: &Outbox, after: u64) -> Vec<u64> {
        outbox.after(after).map(|c| c.seq).collect()
    }

    /// Does the reads an outbox asks for, as the engine's blocking threads would.
    fn read_all(outbox: &mut Outbox, mut read: Option<SpillRead>) {
        while let Some(job) = read {
            read = outbox.refilled(job.run());
        }
    }

    /// Pushes, doing the write (and any read) at once; whether it was taken.
    fn push(outbox: &mut Outbox, stream: i32, data: Bytes, spill: bool) -> bool {
        match outbox.push(stream, data, spill) {
            Pushed::Taken => true,
            Pushed::Full => false,
            Pushed::Spill(write) => {
                let outcome = write.run();
                let read = outbox.written(&outcome);
                read_all(outbox, read);
                outcome.is_ok()
            }
        }
    }

    /// Pushes `n` two-byte chunks while the hub is away.
    fn away(outbox: &mut Outbox, n: usize) {
        for _ in 0..n {
            assert!(push(outbox, 1, Bytes::from_static(b"ab"), true));
        }
    }

    fn ack(outbox: &mut Outbox, seq: u64) {
        let read = outbox.ack(seq);
        read_all(outbox, read);
    }

    #[test]
    fn when_connected_a_full_memory_pushes_back() {
        let (_dir, mut outbox) = outbox(10);
        assert!(push(
            &mut outbox,
            1,
            Bytes::from_static(b"0123456789"),
            false
        ));
        assert!(!push(&mut outbox, 1, Bytes::from_static(b"x"), false));
        ack(&mut outbox, 1);
        assert!(push(&mut outbox, 1, Bytes::from_static(b"x"), false));
        assert_eq!(seqs(&outbox, 0), vec![2]);
    }

    #[test]
    fn while_away_output_spills_and_comes_back_in_order() {
        let (dir, mut outbox) = outbox(4);
        for i in 0..10u8 {
            assert!(push(
                &mut outbox,
                1 + i32::from(i % 2),
                Bytes::from(vec![i; 3]),
                true
            ));
        }
        assert_eq!(outbox.produced(), 10);
        assert!(outbox.spilled_bytes() > 0);
        let mode = std::fs::metadata(dir.path().join("spill"))
            .expect("spill")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let mut seen = Vec::new();
        let mut acked = 0;
        while acked < 10 {
            let next: Vec<Chunk> = outbox.after(acked).cloned().collect();
            assert!(!next.is_empty(), "stalled after {acked}");
            for chunk in next {
                assert_eq!(chunk.data, Bytes::from(vec![(chunk.seq - 1) as u8; 3]));
                seen.push(chunk.seq);
                acked = chunk.seq;
            }
            ack(&mut outbox, acked);
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
        assert!(
            !dir.path().join("spill").exists(),
            "the spill file goes once it is empty"
        );
    }

    #[test]
    fn an_ack_past_memory_skips_spilled_chunks_too() {
        let (_dir, mut outbox) = outbox(1);
        away(&mut outbox, 5);
        ack(&mut outbox, 4);
        assert_eq!(seqs(&outbox, 0), vec![5]);
    }

    #[test]
    fn one_file_job_at_a_time_and_a_failed_write_takes_nothing() {
        let (_dir, mut outbox) = outbox(1);
        assert!(push(&mut outbox, 1, Bytes::from_static(b"a"), true));
        let Pushed::Spill(first) = outbox.push(1, Bytes::from_static(b"b"), true) else {
            panic!("memory is full: the next chunk goes to the file");
        };
        assert!(
            matches!(outbox.push(2, Bytes::from_static(b"c"), true), Pushed::Full),
            "a second write waits for the first"
        );
        assert!(
            outbox.ack(1).is_none(),
            "no read while a write is under way"
        );
        let failed = Err(io::Error::other("disk full"));
        assert!(outbox.written(&failed).is_none());
        assert_eq!(outbox.produced(), 1, "the chunk that failed is not counted");
        assert!(!outbox.has_spill_file());
        // Memory has room again after the ack: the retry fits there.
        drop(first);
        assert!(push(&mut outbox, 1, Bytes::from_static(b"b"), true));
        assert_eq!(seqs(&outbox, 1), vec![2]);
    }

    #[test]
    fn a_read_fills_memory_up_to_its_bound_and_no_further() {
        let (_dir, mut outbox) = outbox(4);
        away(&mut outbox, 6);
        assert_eq!(seqs(&outbox, 0), vec![1, 2]);
        ack(&mut outbox, 2);
        assert_eq!(seqs(&outbox, 0), vec![3, 4], "two chunks fill 4 bytes");
        assert_eq!(outbox.memory_bytes(), 4);
        assert_eq!(outbox.spilled_bytes(), 4);
    }
}
