//! warren's engine: registers with a hub and runs the tasks it is given.
//!
//! [`run`] keeps one registration stream open at a time ([`session`]), reconnecting with
//! backoff and jitter when the hub goes away and keeping its uuid, so the hub gives it its old
//! id back. Each task runs as a child process in its own process group ([`process`]), its
//! stdout and stderr read as they are produced ([`runner`]) into numbered chunks that stay in
//! the task's [`outbox`] until the hub acknowledges them. Tasks keep running while the hub is
//! away ([`tasks`]), their output going past a memory bound to spill files in the engine's
//! own directory ([`spill`]); when the hub is back, the engine reports them and sends again
//! whatever the hub had not made safe. The session sends a runner requests ([`control`]);
//! signals ask the engine to stop ([`shutdown`]), and then it says goodbye to the hub
//! ([`goodbye`]: the hub settles its tasks at once), stops its tasks and waits, bounded, for
//! their runners. Repeated signals change nothing. Sessions ([`sessions`]) are long-lived
//! interpreters that run cells, which are tasks to the rest of the engine. It also copies
//! files for `warren cp` ([`files`]), unless started with `--no-files`.
//!
//! Everything runs on one thread (the runtime every warren program uses); file work is done on
//! blocking threads, and every spawned piece of work has an owner that waits for it. Logs
//! carry an `engine` span (the uuid), a `hub` span per connection (the id the hub gave) and a
//! `task` span per runner (task, attempt and engine id).

pub mod config;
pub mod control;
pub mod files;
pub mod goodbye;
pub mod outbox;
pub mod process;
pub mod pty;
pub mod runner;
pub mod session;
pub mod sessions;
pub mod shutdown;
pub mod spill;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;
use warren_proto::v1::Hello;
use warren_proto::{PROTOCOL_VERSION, VERSION};

use crate::config::{EngineConfig, FIRST_BACKOFF};
use crate::runner::Runners;
use crate::session::{Context, End};
use crate::sessions::Sessions;
use crate::shutdown::Shutdown;
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
    let span = tracing::info_span!("engine", uuid = %hello.uuid);
    serve(config, hello).instrument(span).await
}

async fn serve(config: EngineConfig, hello: Hello) -> Result<(), EngineError> {
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
    let runners = Runners::new(tasks.clone(), config.kill_grace())
        .outside_kill_hold(config.outside_kill_hold());
    let sessions = Sessions::new(tasks.clone(), config.kill_grace());
    // Before the engine's own handlers: they replace an ignore anyway, but tasks must not
    // inherit one (see the function).
    process::undo_inherited_ignores();
    let mut shutdown = Shutdown::install()?;
    tracing::info!(slots = hello.slots, "engine starting");
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
            runners: &runners,
            sessions: &sessions,
            shutdown: &mut shutdown,
        };
        let span = tracing::info_span!("hub", engine = tracing::field::Empty);
        let end = session::serve(ctx, &mut registered).instrument(span).await;
        match (end, shutdown.why()) {
            (End::Exit(why), _) | (End::Retry(_), Some(why)) => {
                finish_tasks(&tasks, &runners, &sessions, &config, &why).await;
                tracing::info!(%why, "engine exiting");
                return Ok(());
            }
            (End::Fatal(why), _) => {
                finish_tasks(&tasks, &runners, &sessions, &config, &why).await;
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
                    _ = shutdown.requested() => {}
                }
            }
        }
    }
}

/// Stops whatever still runs (without a hub to tell) and waits, bounded, for the runners to
/// end, then for the spill file work under way.
async fn finish_tasks(
    tasks: &Tasks,
    runners: &Runners,
    sessions: &Sessions,
    config: &EngineConfig,
    why: &str,
) {
    if tasks.running() > 0 {
        tasks.stop_all(why);
    }
    sessions.close_all(why);
    if !sessions.wait(config.stop_wait()).await {
        tracing::warn!("sessions did not end in time; exiting without them");
    }
    if !runners.wait(config.stop_wait()).await {
        tracing::warn!(
            running = runners.len(),
            "tasks did not end in time; exiting without them"
        );
    }
    if tokio::time::timeout(config.stop_wait(), tasks.settle_io())
        .await
        .is_err()
    {
        tracing::warn!("spill file work did not end in time; exiting without it");
    }
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
        sessions: Vec::new(),
        files: !config.no_files,
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

/// Exponential backoff with jitter, from [`FIRST_BACKOFF`] up to a ceiling.
struct Backoff {
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new(ceiling: Duration) -> Self {
        Self {
            next: FIRST_BACKOFF,
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
