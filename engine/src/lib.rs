//! warren's engine: registers with a hub and runs the tasks it is given.
//!
//! [`run`] keeps one registration stream open at a time ([`session`]), reconnecting with
//! backoff and jitter when the hub goes away and keeping its uuid, so the hub gives it its old
//! id back. Each task runs as a child process in its own process group ([`process`]), its
//! stdout and stderr read as they are produced ([`runner`]) into numbered chunks that stay in
//! the task's [`outbox`] until the hub acknowledges them. Tasks keep running while the hub is
//! away ([`tasks`]); when it is back, the engine reports them and sends again whatever the hub
//! had not made safe.

pub mod config;
pub mod outbox;
pub mod process;
pub mod runner;
pub mod session;
pub mod spill;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warren_proto::v1::Hello;
use warren_proto::{PROTOCOL_VERSION, VERSION};

use crate::config::EngineConfig;
use crate::session::{Context, End};
use crate::tasks::Tasks;

/// Why the engine stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The hub refused the engine in a way retrying can't fix.
    #[error("{0}")]
    Refused(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[from] std::io::Error),
    /// The spill directory is unsafe or can't be made.
    #[error("spill directory: {0}")]
    SpillDir(#[from] warren_proto::os::private_dir::DirError),
}

/// Serves hubs until told to exit, by the hub or by SIGINT, SIGTERM or SIGHUP.
pub async fn run(config: EngineConfig) -> Result<(), EngineError> {
    let hello = hello(&config);
    let _guard = match process::start_guard() {
        Ok(child) => Some(child),
        Err(err) => {
            tracing::warn!(%err, "cannot start the guard; tasks of a killed engine may linger until another engine starts");
            None
        }
    };
    let spill = spill::SpillDir::create(&config.spill_parent(), &hello.uuid)?;
    let tasks = Arc::new(Tasks::new(
        config.outbox_memory as usize,
        spill.path().to_owned(),
    ));
    let mut shutdown = watch_signals()?;
    tracing::info!(uuid = %hello.uuid, slots = hello.slots, "engine starting");
    let orphans = process::kill_orphans(None);
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "killed processes left running by tasks of an engine that was killed"
        );
    }

    let mut backoff = Backoff::new(Duration::from_millis(config.max_backoff_ms));
    loop {
        let mut registered = false;
        let ctx = Context {
            config: &config,
            hello: &hello,
            tasks: &tasks,
            shutdown: &mut shutdown,
        };
        let end = session::serve(ctx, &mut registered).await;
        let stopping = shutdown.borrow().clone();
        match (end, stopping) {
            (End::Exit(why), _) | (End::Retry(_), Some(why)) => {
                finish_tasks(&tasks, &config, &why).await;
                tracing::info!(%why, "engine exiting");
                return Ok(());
            }
            (End::Fatal(why), _) => {
                finish_tasks(&tasks, &config, &why).await;
                return Err(EngineError::Refused(why));
            }
            (End::Retry(why), None) => {
                if registered {
                    backoff = Backoff::new(backoff.ceiling);
                }
                let delay = backoff.next();
                tracing::warn!(%why, retry_in = ?delay, running = tasks.running(), "not connected to a hub");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// Stops whatever still runs (without a hub to tell) and waits, bounded, for it to end.
async fn finish_tasks(tasks: &Tasks, config: &EngineConfig, why: &str) {
    if tasks.running() == 0 {
        return;
    }
    tasks.stop_all(&format!("stopped: its engine is exiting ({why})"));
    let deadline = tokio::time::Instant::now() + config.kill_grace() + Duration::from_secs(3);
    while tasks.running() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A channel that says why the engine should stop, once a signal asks it to.
fn watch_signals() -> Result<watch::Receiver<Option<String>>, EngineError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let why = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
        };
        let _ = tx.send(Some(why.to_owned()));
        // Keep the sender alive so receivers see the value, not a closed channel.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// What the engine tells the hub about itself.
fn hello(config: &EngineConfig) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        uuid: config.uuid.clone().unwrap_or_else(new_uuid),
        hostname: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        pid: std::process::id(),
        labels: config.label_map(),
        slots: config.slots,
        version: VERSION.into(),
        tasks: Vec::new(),
    }
}

fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes =
            (u128::from(std::process::id()) << 64 | warren_proto::now_us() as u128).to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Exponential backoff with jitter, from 100 ms up to a ceiling.
struct Backoff {
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(ceiling: Duration) -> Self {
        Self {
            next: Self::FIRST,
            ceiling,
        }
    }

    fn next(&mut self) -> Duration {
        let base = self.next.min(self.ceiling);
        self.next = (base * 2).min(self.ceiling);
        // Jitter in [base/2, base], so engines that lost the same hub don't return in step.
        let jitter = getrandom::u32().unwrap_or(0) % 1000;
        base / 2 + base * jitter / 2000
    }
}
