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

    /// Sends SIGTERM.
    fn terminate(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

/// How long a stopped process gets to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Stops these processes (SIGTERM to all, then each waited for) while the runtime runs: a
/// hub drains its connections before it exits, and the bench's own dropped clients (and
/// simulated engines) close theirs only when the runtime polls them. Dropping a `Proc`
/// instead blocks the runtime, and the hub waits out its whole drain timeout.
pub(crate) async fn stop(procs: Vec<Proc>) {
    for proc in &procs {
        proc.terminate();
    }
    let deadline = Instant::now() + STOP_GRACE;
    for mut proc in procs {
        while proc.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(proc);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
        let deadline = Instant::now() + STOP_GRACE;
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

    /// Stops the hub (to restart it with `start_hub`), letting its connections close.
    pub(crate) async fn stop_hub(&mut self) {
        stop(self.hub.take().into_iter().collect()).await;
    }

    /// Stops the engines, then the hub, letting their connections close (see [`stop`]).
    pub(crate) async fn stop(mut self) {
        stop(std::mem::take(&mut self.engines)).await;
        self.stop_hub().await;
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

/// The RSS once it stops falling (the hub gives freed memory back at a heartbeat): read every
/// half second until it has not fallen by more than 1% for three seconds, 20 s at most.
pub(crate) async fn settled_rss(pid: u32) -> u64 {
    let mut readings = vec![rss(pid)];
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        readings.push(rss(pid));
        if let [first, .., last] = readings[readings.len().saturating_sub(7)..]
            && readings.len() >= 7
            && last + first / 100 >= first
        {
            return last;
        }
    }
    readings.last().copied().unwrap_or(0)
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

/// The highest resident memory a process has had, in bytes (the kernel's own peak).
pub(crate) fn peak_rss(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

/// A process's CPU time so far (user + system).
pub(crate) fn cpu_time(pid: u32) -> Duration {
    stat_ticks(pid, 11)
}

/// The CPU time (user + system) of a process's children that it has waited for, and of
/// theirs: what a shell pipeline cost, once the shell is reaped.
pub(crate) fn children_cpu_time(pid: u32) -> Duration {
    stat_ticks(pid, 13)
}

/// Fields `first` and `first + 1` of /proc/PID/stat after the command name, added.
fn stat_ticks(pid: u32, first: usize) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(first)?.parse().ok()?;
            let system: u64 = fields.get(first + 1)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    // Linux reports in clock ticks, 100 per second on every platform warren runs on.
    Duration::from_millis(ticks * 10)
}

/// The highest resident memory of a process seen while it is watched (sampled every 10 ms
/// on the bench's runtime, so only while the bench awaits something).
pub(crate) struct RssWatch {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    /// Starts watching `pid`.
    pub(crate) fn start(pid: u32) -> Self {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss(pid)));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                seen.fetch_max(rss(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { peak, task }
    }

    /// Stops watching; the peak seen, in bytes.
    pub(crate) fn stop(self, pid: u32) -> u64 {
        self.task.abort();
        let peak = self.peak.load(std::sync::atomic::Ordering::Relaxed);
        peak.max(rss(pid))
    }
}

/// CPU time so far of the processes on a task's path: the hub, the engines, the tasks the
/// engines have reaped, and this process (the client).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuSplit {
    /// The hub.
    pub(crate) hub: Duration,
    /// The engines together.
    pub(crate) engines: Duration,
    /// The engines' reaped tasks together.
    pub(crate) tasks: Duration,
    /// The bench itself.
    pub(crate) client: Duration,
}

impl CpuSplit {
    /// The CPU times now.
    pub(crate) fn now(cluster: &Cluster) -> Self {
        let engines = cluster.engines.iter().map(Proc::pid);
        Self {
            hub: cpu_time(cluster.hub_pid()),
            engines: engines.clone().map(cpu_time).sum(),
            tasks: engines.map(children_cpu_time).sum(),
            client: cpu_time(std::process::id()),
        }
    }

    /// CPU time since `earlier`: hub, engines, tasks, client.
    fn since(&self, earlier: &Self) -> [Duration; 4] {
        [
            self.hub.saturating_sub(earlier.hub),
            self.engines.saturating_sub(earlier.engines),
            self.tasks.saturating_sub(earlier.tasks),
            self.client.saturating_sub(earlier.client),
        ]
    }

    /// CPU time per task since `earlier`, for `tasks` tasks: hub, engines, tasks, client.
    pub(crate) fn per_task_since(&self, earlier: &Self, tasks: usize) -> [Duration; 4] {
        let tasks = u32::try_from(tasks.max(1)).unwrap_or(u32::MAX);
        self.since(earlier).map(|d| d / tasks)
    }

    /// CPU seconds per GiB since `earlier`, for `bytes` moved: hub, engines, tasks, client.
    pub(crate) fn per_gib_since(&self, earlier: &Self, bytes: u64) -> [f64; 4] {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        self.since(earlier).map(|d| d.as_secs_f64() / gib)
    }
}
