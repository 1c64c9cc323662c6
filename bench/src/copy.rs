//! Scenario 9: `warren cp` throughput, up to an engine and back down, beside the same run's
//! UDS bulk baseline and a local copy through the same code (read, hash, write, hash,
//! rename) without the hub or any socket, with the hub's memory watched while it relays.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warren::{Client, CopyOptions, CopyTo};

use crate::procs::{cpu_time, rss};

/// What the copy scenario measured: bytes per second (medians) and the hub's memory.
pub(crate) struct CopyFigures {
    /// Here to engine 1, through the hub.
    pub(crate) up: f64,
    /// Engine 1 to here, through the hub.
    pub(crate) down: f64,
    /// Source to sink in this process: the files' own cost.
    pub(crate) local: f64,
    /// The hub's resident memory before the copies, and the most seen during them.
    pub(crate) hub_rss_before: u64,
    /// The most resident memory seen in the hub during the copies.
    pub(crate) hub_rss_peak: u64,
    /// CPU seconds per GiB moved, up and down: this client, the hub, the engine.
    pub(crate) cpu_up: Cpu,
    /// See `cpu_up`.
    pub(crate) cpu_down: Cpu,
}

/// CPU seconds per GiB in each process of a copy, which two busy cores can't blur.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    pub(crate) client: f64,
    pub(crate) hub: f64,
    pub(crate) engine: f64,
}

impl Cpu {
    fn now(hub: u32, engine: u32) -> [Duration; 3] {
        [
            cpu_time(std::process::id()),
            cpu_time(hub),
            cpu_time(engine),
        ]
    }

    fn since(before: [Duration; 3], hub: u32, engine: u32, bytes: u64) -> Self {
        let after = Self::now(hub, engine);
        let per_gib = |i: usize| {
            after[i].saturating_sub(before[i]).as_secs_f64() * (1u64 << 30) as f64 / bytes as f64
        };
        Self {
            client: per_gib(0),
            hub: per_gib(1),
            engine: per_gib(2),
        }
    }
}

/// Copies a file of `bytes` pseudo-random bytes (nothing sparse: every byte is written)
/// `runs` times each way; the files are removed after.
pub(crate) async fn copy(
    client: &Client,
    hub_pid: u32,
    scratch: &Path,
    bytes: u64,
    runs: usize,
) -> anyhow::Result<CopyFigures> {
    let dir = tempfile::Builder::new()
        .prefix("warren-bench-copy-")
        .tempdir_in(place(scratch, bytes))?;
    let source = dir.path().join("source");
    let path = source.clone();
    tokio::task::spawn_blocking(move || random_file(&path, bytes)).await??;
    let (mut up, mut down, mut local) = (Vec::new(), Vec::new(), Vec::new());
    let hub_rss_before = rss(hub_pid);
    let peak = Arc::new(AtomicU64::new(hub_rss_before));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (peak, watching) = (peak.clone(), watching.clone());
        async move {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max(rss(hub_pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let options = CopyOptions::new();
    let engine_pid = client
        .engines()
        .await?
        .iter()
        .find(|e| e.id == 1)
        .map(|e| e.pid)
        .context("engine 1 is not registered")?;
    let (mut cpu_up, mut cpu_down) = (Cpu::default(), Cpu::default());
    for run in 0..runs {
        let target = dir.path().join(format!("local-{run}"));
        let started = Instant::now();
        let (from, to) = (source.clone(), target.clone());
        tokio::task::spawn_blocking(move || local_copy(&from, &to)).await??;
        local.push(bytes as f64 / started.elapsed().as_secs_f64());
        std::fs::remove_file(&target)?;

        let remote = dir.path().join(format!("remote-{run}"));
        let remote_path = remote.to_str().context("utf-8 scratch path")?;
        let started = Instant::now();
        let cpu = Cpu::now(hub_pid, engine_pid);
        let results = client
            .upload(
                std::slice::from_ref(&source),
                CopyTo::Engine(1),
                remote_path,
                &options,
            )
            .await?;
        anyhow::ensure!(
            results.iter().all(|r| r.code == 0),
            "upload failed: {results:?}"
        );
        up.push(bytes as f64 / started.elapsed().as_secs_f64());
        cpu_up = Cpu::since(cpu, hub_pid, engine_pid, bytes);

        let back = dir.path().join(format!("back-{run}"));
        let started = Instant::now();
        let cpu = Cpu::now(hub_pid, engine_pid);
        client.download(1, remote_path, &back, &options).await?;
        down.push(bytes as f64 / started.elapsed().as_secs_f64());
        cpu_down = Cpu::since(cpu, hub_pid, engine_pid, bytes);
        std::fs::remove_file(&remote)?;
        std::fs::remove_file(&back)?;
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await?;
    Ok(CopyFigures {
        up: median(up),
        down: median(down),
        local: median(local),
        hub_rss_before,
        hub_rss_peak: peak.load(Ordering::Relaxed),
        cpu_up,
        cpu_down,
    })
}

/// Where the files go: memory (/dev/shm) if it has room for three copies, so that the
/// figures are warren's and not the disk's; else the scratch directory.
pub(crate) fn place(scratch: &Path, bytes: u64) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    if shm.is_dir() && room > bytes * 4 {
        shm.to_owned()
    } else {
        scratch.to_owned()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Writes `bytes` of xorshift output: no zero chunks, so every byte reaches the disk.
fn random_file(path: &PathBuf, bytes: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < bytes {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let len = block.len().min((bytes - written) as usize);
        file.write_all(&block[..len])?;
        written += len as u64;
    }
    file.flush()?;
    Ok(())
}

/// The copy without the hub: the same source and sink, item by item, in one thread.
fn local_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source = warren_files::Source::open(&[from.to_owned()], false)?;
    let mut sink = warren_files::Sink::open(to, 1)?;
    while let Some(item) = source.next_item()? {
        sink.apply(item)?;
    }
    sink.finish()?;
    Ok(())
}
