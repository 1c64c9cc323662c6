//! The hub and engines under test: the release binaries, on a socket in a temp dir.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warren::Client;

/// A binary beside this one (cargo puts them all in target/release).
pub(crate) fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .context("no directory")?
        .join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build everything first: cargo build --release",
            path.display()
        );
    }
    Ok(path)
}

/// The log filter of the hubs and engines the bench starts: `WARREN_BENCH_LOG`, else errors
/// only (their logs go to the bench's stderr).
fn bench_log() -> String {
    std::env::var("WARREN_BENCH_LOG").unwrap_or_else(|_| "error".into())
}

/// A child process that is stopped when dropped.
pub(crate) struct Proc(pub Child);

impl Proc {
    /// The pid.
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hub and its engines in a private temp dir.
pub(crate) struct Cluster {
    /// The engines.
    pub(crate) engines: Vec<Proc>,
    /// The hub.
    pub(crate) hub: Option<Proc>,
    /// The temp dir.
    pub(crate) dir: tempfile::TempDir,
}

impl Cluster {
    /// A hub with these flags and no engines yet.
    pub(crate) async fn hub(args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("warren-bench-").tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let mut cluster = Self {
            engines: Vec::new(),
            hub: None,
            dir,
        };
        cluster.start_hub(args).await?;
        Ok(cluster)
    }

    /// The hub's socket.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("hub.sock")
    }

    /// The hub's connection file.
    pub(crate) fn connection_file(&self) -> PathBuf {
        self.dir.path().join("hub.json")
    }

    /// Starts (or restarts) the hub and waits until it answers; returns how long that took.
    pub(crate) async fn start_hub(&mut self, args: &[&str]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut command = Command::new(binary("warren-hub")?);
        command
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env("RUST_LOG", bench_log())
            .stdin(Stdio::null());
        if !args.iter().any(|a| *a == "--db" || a.starts_with("--db=")) {
            command.arg("--db").arg(self.dir.path().join("hub.db"));
        }
        let hub = Proc(command.spawn().context("start warren-hub")?);
        let pid = hub.pid();
        self.hub = Some(hub);
        wait_until(Duration::from_secs(60), || {
            let info = warren_proto::connection::ConnectionInfo::load(&self.connection_file());
            async move { info.is_ok_and(|i| i.hub_pid == pid) }
        })
        .await?;
        wait_until(Duration::from_secs(30), || warren_ok(self.socket())).await?;
        Ok(started.elapsed())
    }

    /// Starts `n` engines with these flags and waits until they are registered.
    pub(crate) async fn add_engines(&mut self, n: usize, args: &[&str]) -> anyhow::Result<()> {
        for i in 0..n {
            let mut command = Command::new(binary("warren-engine")?);
            command
                .arg("--connection-file")
                .arg(self.connection_file())
                .arg("--spill-dir")
                .arg(
                    self.dir
                        .path()
                        .join(format!("spill-{}", self.engines.len() + i)),
                )
                .args(args)
                .env("RUST_LOG", bench_log())
                .stdin(Stdio::null());
            self.engines
                .push(Proc(command.spawn().context("start warren-engine")?));
        }
        let client = self.client().await?;
        let want = self.engines.len();
        wait_until(Duration::from_secs(60), || {
            let client = client.clone();
            async move { client.engines().await.is_ok_and(|e| e.len() >= want) }
        })
        .await
    }

    /// A signed client.
    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(self.connection_file()).await?)
    }

    /// The hub's pid.
    pub(crate) fn hub_pid(&self) -> u32 {
        self.hub.as_ref().map_or(0, Proc::pid)
    }
}

async fn warren_ok(socket: PathBuf) -> bool {
    warren::ping(&socket).await.is_ok()
}

/// Polls `check` every 2 ms until it is true, for at most `limit`.
pub(crate) async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// A process's resident memory, in bytes.
pub(crate) fn rss(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A process's CPU time so far (user + system).
pub(crate) fn cpu_time(pid: u32) -> Duration {
    stat_ticks(pid, 11, 12)
}

/// The sum of two clock-tick fields of /proc/PID/stat (counted after the command's name).
fn stat_ticks(pid: u32, a: usize, b: usize) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let first: u64 = fields.get(a)?.parse().ok()?;
            let second: u64 = fields.get(b)?.parse().ok()?;
            Some(first + second)
        })
        .unwrap_or(0);
    // Linux reports in clock ticks, 100 per second on every platform warren runs on.
    Duration::from_millis(ticks * 10)
}

/// CPU time (user + system) of a process's children that it has waited for.
pub(crate) fn children_cpu_time(pid: u32) -> Duration {
    stat_ticks(pid, 13, 14)
}

/// CPU seconds per GiB in each process of a stream: the hub, the engines, the client (this
/// process) and the task (the engines' waited-for children).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamCpu {
    /// The hub.
    pub(crate) hub: f64,
    /// The engines together.
    pub(crate) engine: f64,
    /// The bench itself, following.
    pub(crate) client: f64,
    /// The tasks the engines ran and reaped.
    pub(crate) task: f64,
}

impl StreamCpu {
    /// The CPU seconds used so far.
    pub(crate) fn take(cluster: &Cluster) -> Self {
        let secs = |d: Duration| d.as_secs_f64();
        let engines = cluster.engines.iter().map(Proc::pid);
        Self {
            hub: secs(cpu_time(cluster.hub_pid())),
            engine: engines.clone().map(|p| secs(cpu_time(p))).sum(),
            client: secs(cpu_time(std::process::id())),
            task: engines.map(|p| secs(children_cpu_time(p))).sum(),
        }
    }

    /// Seconds per GiB used since `self` was taken, for `bytes` streamed.
    pub(crate) fn per_gib(self, cluster: &Cluster, bytes: u64) -> Self {
        let now = Self::take(cluster);
        let gib = bytes as f64 / f64::from(1u32 << 30);
        Self {
            hub: (now.hub - self.hub) / gib,
            engine: (now.engine - self.engine) / gib,
            client: (now.client - self.client) / gib,
            task: (now.task - self.task) / gib,
        }
    }
}
