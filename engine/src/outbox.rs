//! One task's output that the hub has not yet made safe: numbered chunks, the oldest in
//! memory up to a bound, the rest in a spill file of mode 0600.
//!
//! Chunks are numbered from 1 per task attempt. A chunk leaves only when the hub acknowledges
//! it (after committing it), so a hub that dies loses nothing: the engine sends everything
//! after the last acknowledgement again, and the hub drops what it already had. While the hub
//! is connected a full memory bound makes the task wait (backpressure); while it is away,
//! output goes to the spill file instead, so tasks keep running.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

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
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Taken.
    Taken,
    /// Memory is full and the hub is connected: wait for acknowledgements and push again.
    Full,
}

/// Chunks on disk, in order: `[seq u64][stream u8][len u32][bytes]` records.
#[derive(Debug)]
struct Spill {
    file: File,
    path: PathBuf,
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
        }
    }

    /// Adds a chunk: to memory if there is room, else to the spill file if `spill` (the hub
    /// is away), else refuses it for now.
    pub fn push(&mut self, stream: i32, data: Bytes, spill: bool) -> io::Result<Pushed> {
        let fits = self.spill.is_none()
            && (self.memory.is_empty() || self.memory_bytes + data.len() <= self.memory_limit);
        if !fits && !spill {
            return Ok(Pushed::Full);
        }
        let chunk = Chunk {
            seq: self.next_seq,
            stream,
            data,
        };
        if fits {
            self.memory_bytes += chunk.data.len();
            self.memory.push_back(chunk);
        } else {
            self.spill_chunk(&chunk)?;
        }
        self.next_seq += 1;
        Ok(Pushed::Taken)
    }

    fn spill_chunk(&mut self, chunk: &Chunk) -> io::Result<()> {
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&self.spill_path)?;
                self.spill.insert(Spill {
                    file,
                    path: self.spill_path.clone(),
                    read_pos: 0,
                    write_pos: 0,
                    records: 0,
                    bytes: 0,
                })
            }
        };
        let mut record = Vec::with_capacity(13 + chunk.data.len());
        record.extend_from_slice(&chunk.seq.to_le_bytes());
        record.push(chunk.stream as u8);
        record.extend_from_slice(&(chunk.data.len() as u32).to_le_bytes());
        record.extend_from_slice(&chunk.data);
        spill.file.seek(SeekFrom::Start(spill.write_pos))?;
        spill.file.write_all(&record)?;
        spill.write_pos += record.len() as u64;
        spill.records += 1;
        spill.bytes += chunk.data.len() as u64;
        Ok(())
    }

    /// The hub has every chunk up to `seq`: forget them, and bring spilled ones into memory.
    pub fn ack(&mut self, seq: u64) -> io::Result<()> {
        self.acked = self.acked.max(seq);
        while self.memory.front().is_some_and(|c| c.seq <= self.acked) {
            if let Some(chunk) = self.memory.pop_front() {
                self.memory_bytes -= chunk.data.len();
            }
        }
        self.refill()
    }

    fn refill(&mut self) -> io::Result<()> {
        loop {
            let Some(spill) = &mut self.spill else {
                return Ok(());
            };
            if spill.records == 0 {
                let _ = std::fs::remove_file(&spill.path);
                self.spill = None;
                return Ok(());
            }
            if !self.memory.is_empty() && self.memory_bytes >= self.memory_limit {
                return Ok(());
            }
            spill.file.seek(SeekFrom::Start(spill.read_pos))?;
            let mut header = [0u8; 13];
            spill.file.read_exact(&mut header)?;
            let seq = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
            let stream = i32::from(header[8]);
            let len = u32::from_le_bytes(header[9..13].try_into().unwrap_or_default()) as usize;
            let mut data = vec![0u8; len];
            spill.file.read_exact(&mut data)?;
            spill.read_pos += 13 + len as u64;
            spill.records -= 1;
            spill.bytes -= len as u64;
            if seq > self.acked {
                self.memory_bytes += len;
                self.memory.push_back(Chunk {
                    seq,
                    stream,
                    data: data.into(),
                });
            }
        }
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
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(spill) = &self.spill {
            let _ = std::fs::remove_file(&spill.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(dir: &tempfile::TempDir, limit: usize) -> Outbox {
        Outbox::new(limit, dir.path().join("spill"))
    }

    fn seqs(outbox: &Outbox, after: u64) -> Vec<u64> {
        outbox.after(after).map(|c| c.seq).collect()
    }

    #[test]
    fn when_connected_a_full_memory_pushes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = outbox(&dir, 10);
        assert_eq!(
            outbox
                .push(1, Bytes::from_static(b"0123456789"), false)
                .ok(),
            Some(Pushed::Taken)
        );
        assert_eq!(
            outbox.push(1, Bytes::from_static(b"x"), false).ok(),
            Some(Pushed::Full)
        );
        outbox.ack(1).expect("ack");
        assert_eq!(
            outbox.push(1, Bytes::from_static(b"x"), false).ok(),
            Some(Pushed::Taken)
        );
        assert_eq!(seqs(&outbox, 0), vec![2]);
    }

    #[test]
    fn while_away_output_spills_and_comes_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = outbox(&dir, 4);
        for i in 0..10u8 {
            outbox
                .push(1 + i32::from(i % 2), Bytes::from(vec![i; 3]), true)
                .expect("push");
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
            outbox.ack(acked).expect("ack");
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
        assert!(
            !dir.path().join("spill").exists(),
            "the spill file goes once it is empty"
        );
    }

    #[test]
    fn an_ack_past_memory_skips_spilled_chunks_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = outbox(&dir, 1);
        for _ in 0..5 {
            outbox
                .push(1, Bytes::from_static(b"ab"), true)
                .expect("push");
        }
        outbox.ack(4).expect("ack");
        assert_eq!(seqs(&outbox, 0), vec![5]);
    }
}
