//! warren's engine: registers with a hub and runs the tasks it is given.
//!
//! [`run`] keeps one registration stream open at a time ([`session`]), reconnecting with
//! backoff and jitter when the hub goes away and keeping its uuid, so the hub gives it its old
//! id back. Each task runs as a child process in its own process group ([`process`]), its
//! stdout and stderr streamed to the hub as they are produced ([`runner`]).

pub mod config;
pub mod process;
pub mod runner;
pub mod session;

use std::collections::HashMap;
use std::time::Duration;
use warren_proto::v1::Hello;
use warren_proto::{PROTOCOL_VERSION, VERSION};

use crate::config::EngineConfig;
use crate::runner::{Control, RunningTask};
use crate::session::End;

/// Why the engine stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The hub refused the engine in a way retrying can't fix.
    #[error("{0}")]
    Refused(String),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[from] std::io::Error),
}

/// Serves hubs until told to exit, by the hub or by SIGINT, SIGTERM or SIGHUP.
pub async fn run(config: EngineConfig) -> Result<(), EngineError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;

    let hello = hello(&config);
    tracing::info!(uuid = %hello.uuid, slots = hello.slots, "engine starting");
    let mut tasks = HashMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(config.max_backoff_ms));
    loop {
        let mut registered = false;
        let end = tokio::select! {
            end = session::serve(&config, &hello, &mut tasks, &mut registered) => end,
            _ = interrupt.recv() => End::Exit("SIGINT".into()),
            _ = terminate.recv() => End::Exit("SIGTERM".into()),
            _ = hangup.recv() => End::Exit("SIGHUP".into()),
        };
        // The hub has written off whatever was running on this connection.
        stop_all(&mut tasks, config.kill_grace()).await;
        match end {
            End::Exit(why) => {
                tracing::info!(%why, "engine exiting");
                return Ok(());
            }
            End::Fatal(why) => return Err(EngineError::Refused(why)),
            End::Retry(why) => {
                if registered {
                    backoff = Backoff::new(backoff.ceiling);
                }
                let delay = backoff.next();
                tracing::warn!(%why, retry_in = ?delay, "not connected to a hub");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = interrupt.recv() => return Ok(()),
                    _ = terminate.recv() => return Ok(()),
                    _ = hangup.recv() => return Ok(()),
                }
            }
        }
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

/// Terminates every running task and waits (bounded) for them to end.
async fn stop_all(tasks: &mut HashMap<u64, RunningTask>, grace: Duration) {
    tasks.retain(|_, task| !task.is_finished());
    if tasks.is_empty() {
        return;
    }
    for task in tasks.values() {
        task.send(Control::Cancel);
    }
    let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        tasks.retain(|_, task| !task.is_finished());
        if tasks.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(left = tasks.len(), "tasks did not stop in time");
    tasks.clear();
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
