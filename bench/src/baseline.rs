//! What the machine itself can do, measured in the same run: a Unix-socket ping-pong and bulk
//! transfer between two processes, spawning /bin/true (one at a time, hot and from rest, and two
//! loops at once),
//! a chain of `cat`s joined by pipes, and an unsigned tonic call.

use anyhow::Context;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{Proc, children_cpu_time, cpu_time};
use crate::stats::Samples;

/// Bytes per ping.
const PING: usize = 64;
/// Bytes per bulk write.
const BULK_WRITE: usize = 64 * 1024;

/// The other process of the socket baselines: echoes 64-byte pings, or swallows a bulk
/// transfer and answers one byte at its end (`warren-bench --serve-socket PATH`).
pub(crate) fn serve(path: &Path) -> anyhow::Result<()> {
    let listener = UnixListener::bind(path)?;
    for stream in listener.incoming() {
        // A connection that says nothing (the readiness probe) is not an error.
        let _ = serve_one(stream?);
    }
    Ok(())
}

fn serve_one(mut stream: UnixStream) -> anyhow::Result<()> {
    {
        let mut kind = [0u8; 1];
        stream.read_exact(&mut kind)?;
        match kind[0] {
            b'p' => {
                let mut buf = [0u8; PING];
                while stream.read_exact(&mut buf).is_ok() {
                    stream.write_all(&buf)?;
                }
            }
            b'b' => {
                let mut total = [0u8; 8];
                stream.read_exact(&mut total)?;
                let mut left = u64::from_le_bytes(total);
                let mut buf = vec![0u8; BULK_WRITE];
                while left > 0 {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    left = left.saturating_sub(n as u64);
                }
                stream.write_all(b"k")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The socket server process, running.
pub(crate) struct SocketPeer {
    _proc: Proc,
    path: std::path::PathBuf,
}

impl SocketPeer {
    /// Starts `warren-bench --serve-socket` in another process.
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("peer.sock");
        let child = Command::new(std::env::current_exe()?)
            .arg("--serve-socket")
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .context("start the socket peer")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&path).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the socket peer did not start");
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Self {
            _proc: Proc(child),
            path,
        })
    }

    /// Round trips of 64 bytes.
    pub(crate) fn ping_pong(&self, runs: usize) -> anyhow::Result<Samples> {
        let mut stream = UnixStream::connect(&self.path)?;
        stream.write_all(b"p")?;
        let mut buf = [7u8; PING];
        let mut samples = Vec::with_capacity(runs);
        for i in 0..runs + runs / 10 {
            let start = Instant::now();
            stream.write_all(&buf)?;
            stream.read_exact(&mut buf)?;
            if i >= runs / 10 {
                samples.push(start.elapsed());
            }
        }
        Ok(Samples::new(samples))
    }

    /// Bytes per second for `total` bytes in 64 KiB writes.
    pub(crate) fn bulk(&self, total: u64) -> anyhow::Result<f64> {
        let mut stream = UnixStream::connect(&self.path)?;
        stream.write_all(b"b")?;
        stream.write_all(&total.to_le_bytes())?;
        let buf = vec![1u8; BULK_WRITE];
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            stream.write_all(&buf)?;
            sent += BULK_WRITE as u64;
        }
        let mut ack = [0u8; 1];
        stream.read_exact(&mut ack)?;
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }
}

/// How long the after-idle spawn baseline lets the machine rest before each spawn: about a
/// round trip's time, so that the CPUs halt between spawns as they do between round trips.
pub(crate) const SPAWN_IDLE: Duration = Duration::from_millis(1);

/// `/bin/true` spawned and waited for (Rust's std uses posix_spawn for this), one right after
/// another.
pub(crate) fn spawn_true(runs: usize) -> anyhow::Result<Samples> {
    spawn_true_after(runs, Duration::ZERO)
}

/// [`spawn_true`] after `idle` of rest before each spawn. A task's engine spawns after it has
/// waited for the hub, not in a hot loop; on this kind of machine (a VM whose idle CPUs halt)
/// a spawn from rest costs more than one in a loop, whatever program makes it.
pub(crate) fn spawn_true_after(runs: usize, idle: Duration) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        if !idle.is_zero() {
            std::thread::sleep(idle);
        }
        let start = Instant::now();
        let status = Command::new("/bin/true").stdin(Stdio::null()).status()?;
        anyhow::ensure!(status.success(), "/bin/true failed");
        if i >= runs / 10 {
            samples.push(start.elapsed());
        }
    }
    Ok(Samples::new(samples))
}

/// Unsigned unary calls (gRPC health checks, which the hub serves without a signature).
pub(crate) async fn unsigned_unary(socket: &Path, runs: usize) -> anyhow::Result<Samples> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = warren_proto::transport::connect_unix(socket).await?;
    let mut client = HealthClient::new(channel);
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        let start = Instant::now();
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        if i >= runs / 10 {
            samples.push(start.elapsed());
        }
    }
    Ok(Samples::new(samples))
}

/// What a chain of copying processes moves: the stream's baseline.
pub(crate) struct Chain {
    /// Bytes per second through the chain (the best of its runs).
    pub(crate) bytes_per_s: f64,
    /// CPU seconds per GiB of all its processes together (head, three cats, the shell).
    pub(crate) cpu_s_per_gib: f64,
}

/// `head -c BYTES /dev/zero | cat | cat | cat > /dev/null`, `runs` times: three copying
/// processes joined by pipes, the same bytes the stream scenario moves. The CPU time is the
/// bench's reaped children's (the shell reaps the pipeline), so nothing else may be reaped
/// meanwhile: this runs on the bench's own thread before any cluster starts.
pub(crate) fn cat_chain(bytes: u64, runs: usize) -> anyhow::Result<Chain> {
    let me = std::process::id();
    let pipeline = format!("head -c {bytes} /dev/zero | cat | cat | cat > /dev/null");
    let (mut best, mut cpu) = (Duration::MAX, Duration::ZERO);
    for _ in 0..runs.max(1) {
        let before = children_cpu_time(me);
        let start = Instant::now();
        let status = Command::new("sh")
            .args(["-c", &pipeline])
            .stdin(Stdio::null())
            .status()
            .context("run the cat chain with sh")?;
        best = best.min(start.elapsed());
        anyhow::ensure!(status.success(), "the cat chain failed: {status}");
        cpu += children_cpu_time(me).saturating_sub(before);
    }
    let gib = bytes as f64 / GIB * runs.max(1) as f64;
    Ok(Chain {
        bytes_per_s: bytes as f64 / best.as_secs_f64(),
        cpu_s_per_gib: cpu.as_secs_f64() / gib,
    })
}

/// Bytes in a GiB, as a float.
pub(crate) const GIB: f64 = (1u64 << 30) as f64;

/// What the spawn capacity baseline measured.
pub(crate) struct Capacity {
    /// Tasks per second over both loops.
    pub(crate) tasks_per_s: f64,
    /// CPU time per task of the spawning process (posix_spawn, wait).
    pub(crate) spawner_cpu_per_task: Duration,
    /// CPU time per task of `/bin/true` itself (reaped by the loops).
    pub(crate) child_cpu_per_task: Duration,
}

/// Spawn capacity: two loops, on two threads at once, each spawning `/bin/true` and waiting
/// for it `per_loop` times; tasks per second over both. The throughput scenario's baseline.
/// Like [`cat_chain`], it runs before any cluster starts, so that the bench's reaped children
/// are only its own spawns.
pub(crate) fn spawn_capacity(per_loop: usize) -> anyhow::Result<Capacity> {
    let me = std::process::id();
    let (own, children) = (cpu_time(me), children_cpu_time(me));
    let start = Instant::now();
    let loops: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || -> anyhow::Result<()> {
                for _ in 0..per_loop {
                    let status = Command::new("/bin/true").stdin(Stdio::null()).status()?;
                    anyhow::ensure!(status.success(), "/bin/true failed");
                }
                Ok(())
            })
        })
        .collect();
    for spawner in loops {
        spawner
            .join()
            .map_err(|_| anyhow::anyhow!("a spawn loop panicked"))??;
    }
    let tasks = 2 * per_loop;
    let per_task = |d: Duration| d / u32::try_from(tasks).unwrap_or(u32::MAX);
    Ok(Capacity {
        tasks_per_s: tasks as f64 / start.elapsed().as_secs_f64(),
        spawner_cpu_per_task: per_task(cpu_time(me).saturating_sub(own)),
        child_cpu_per_task: per_task(children_cpu_time(me).saturating_sub(children)),
    })
}
