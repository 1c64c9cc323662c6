//! One task's spill file and the work on it, done off the async runtime: appending a chunk
//! ([`SpillWrite`]) and reading chunks back ([`SpillRead`]).
//!
//! The file is a run of records, `[seq u64][stream u8][len u32][bytes]` (little-endian), each
//! written once at its offset and read back once, in order. Writes and reads name their
//! offsets (`pwrite`/`pread`), so one handle serves both without seeking. The file is made
//! (mode 0600) by its first write and removed when the last handle to it goes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::Chunk;

/// Bytes of a record before its data: seq, stream and length.
const HEADER: usize = 13;

/// A spill file, made on the first write and removed on drop.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
    file: OnceLock<File>,
}

impl SpillFile {
    /// A spill file at `path`, not made yet.
    pub fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            file: OnceLock::new(),
        })
    }

    fn open(&self) -> io::Result<&File> {
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)?;
        // The outbox lets one job at a time near its file, so nobody set it meanwhile.
        Ok(self.file.get_or_init(|| file))
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        if self.file.get().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Appending one chunk, as the outbox asked.
#[derive(Debug)]
pub struct SpillWrite {
    pub(crate) file: Arc<SpillFile>,
    pub(crate) at: u64,
    pub(crate) chunk: Chunk,
}

/// What a write added to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Bytes of the record.
    pub record: u64,
    /// Bytes of output in it.
    pub data: u64,
}

impl SpillWrite {
    /// Does it: blocking file I/O, for a blocking thread.
    pub fn run(&self) -> io::Result<Appended> {
        let data = &self.chunk.data;
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "chunk over 4 GiB"))?;
        let mut record = Vec::with_capacity(HEADER + data.len());
        record.extend_from_slice(&self.chunk.seq.to_le_bytes());
        record.push(self.chunk.stream as u8);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(data);
        self.file.open()?.write_all_at(&record, self.at)?;
        Ok(Appended {
            record: record.len() as u64,
            data: data.len() as u64,
        })
    }
}

/// Reading chunks back, as the outbox asked: from `at`, up to `records` of them, and no more
/// than fill `budget` bytes (but at least one).
#[derive(Debug)]
pub struct SpillRead {
    pub(crate) file: Arc<SpillFile>,
    pub(crate) at: u64,
    pub(crate) records: u64,
    pub(crate) budget: usize,
}

/// What a read brought back.
#[derive(Debug)]
pub struct ReadBack {
    /// The chunks, in order.
    pub chunks: Vec<Chunk>,
    /// Where the next unread record starts.
    pub next: u64,
}

impl SpillRead {
    /// Does it: blocking file I/O, for a blocking thread.
    pub fn run(&self) -> io::Result<ReadBack> {
        let file = (self.file.file.get())
            .ok_or_else(|| io::Error::other("read before anything was spilled"))?;
        let mut back = ReadBack {
            chunks: Vec::new(),
            next: self.at,
        };
        let mut bytes = 0;
        while (back.chunks.len() as u64) < self.records
            && (back.chunks.is_empty() || bytes < self.budget)
        {
            let mut header = [0u8; HEADER];
            file.read_exact_at(&mut header, back.next)?;
            let [s0, s1, s2, s3, s4, s5, s6, s7, stream, l0, l1, l2, l3] = header;
            let seq = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
            let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
            let mut data = vec![0u8; len];
            file.read_exact_at(&mut data, back.next + HEADER as u64)?;
            back.next += (HEADER + len) as u64;
            bytes += len;
            back.chunks.push(Chunk {
                seq,
                stream: i32::from(stream),
                data: data.into(),
            });
        }
        Ok(back)
    }
}
