//! What the hub was configured with, as its operations need it: every limit and every span of
//! time the hub waits for is named here, from a flag or as a fixed default.

use std::time::Duration;

use super::tasklog::LogLimits;
use crate::config::HubConfig;

/// How long a new registration stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `Abort` waits for the ends of the tasks it ended to be committed and shown.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// The smallest copy window: two chunks, so that one can be written while the next arrives.
const MIN_COPY_WINDOW: u64 = 2 * warren_files::CHUNK as u64 + 4096;
/// How often the retention policy runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Bounds on what clients and engines may make the hub hold.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Tasks waiting for an engine, in all.
    pub(crate) max_queued: usize,
    /// Tasks waiting for an engine, per submitting process.
    pub(crate) max_queued_per_client: usize,
    /// Engines registered at once.
    pub(crate) max_engines: usize,
    /// Engines remembered (id for uuid) beside the connected ones.
    pub(crate) max_engine_records: usize,
    /// Followers of one task at once.
    pub(crate) max_followers_per_task: usize,
    /// Follow streams one client process may have open.
    pub(crate) max_streams_per_client: usize,
    /// Follow streams open at once, in all.
    pub(crate) max_follow_streams: usize,
    /// Bytes of events that followers may hold on their way out, in all.
    pub(crate) follow_memory: usize,
    /// Output bytes received from engines and not yet committed.
    pub(crate) output_in_flight: usize,
    /// Stdin bytes held for tasks not yet started (each task counts its stdin).
    pub(crate) max_input_held: u64,
    /// Live sessions on one engine.
    pub(crate) max_sessions_per_engine: usize,
    /// Cells sent to one session and not yet ended.
    pub(crate) max_cells_per_session: usize,
    /// Streamed stdin in flight per task (taken from the client, not yet written).
    pub(crate) stdin_window: u64,
    /// Bytes of one file copy in flight between the hub and an engine.
    pub(crate) copy_window: u64,
    /// File copy calls relayed at once.
    pub(crate) max_copies: usize,
}

/// How long finished tasks stay in the history.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retention {
    /// Finished tasks older than this go.
    pub(crate) max_age: Duration,
    /// The oldest finished tasks go while their kept output is larger than this.
    pub(crate) max_bytes: u64,
    /// How often the policy runs.
    pub(crate) every: Duration,
}

/// What the hub was configured with that its operations need.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The hub's id.
    pub(crate) hub_id: String,
    /// How often the hub and engines exchange heartbeats.
    pub(crate) heartbeat: Duration,
    /// Silence after which an engine is declared dead.
    pub(crate) engine_timeout: Duration,
    /// How long tasks wait for their engine after a hub restart.
    pub(crate) reattach_grace: Duration,
    /// How long a stopping hub waits for the engines it told to exit to end their tasks.
    pub(crate) shutdown_grace: Duration,
    /// How long a new registration stream may take to say Hello.
    pub(crate) hello_timeout: Duration,
    /// How long `Abort` waits for the ends it decided to be committed.
    pub(crate) abort_wait: Duration,
    /// How much output each task keeps and holds.
    pub(crate) log_limits: LogLimits,
    /// Engine deaths after which a task is not retried.
    pub(crate) max_engine_deaths: u32,
    /// Bounds.
    pub(crate) limits: Limits,
    /// What the history keeps.
    pub(crate) retention: Retention,
}

impl Settings {
    /// The settings from the hub's flags.
    pub(crate) fn new(config: &HubConfig, hub_id: String) -> Self {
        Self {
            hub_id,
            heartbeat: config.heartbeat(),
            engine_timeout: config.engine_timeout(),
            reattach_grace: Duration::from_millis(config.reattach_grace_ms),
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
            hello_timeout: HELLO_TIMEOUT,
            abort_wait: ABORT_WAIT,
            log_limits: LogLimits {
                keep: config.max_output_kept,
                window: config.follow_window,
            },
            max_engine_deaths: config.max_engine_deaths,
            limits: Limits {
                max_queued: config.max_queued,
                max_queued_per_client: config.max_queued_per_client,
                max_engines: config.max_engines,
                max_engine_records: config.max_engine_records,
                max_followers_per_task: config.max_followers_per_task,
                max_streams_per_client: config.max_streams_per_client,
                max_follow_streams: config.max_follow_streams,
                follow_memory: usize::try_from(config.follow_memory).unwrap_or(usize::MAX),
                output_in_flight: usize::try_from(config.output_in_flight).unwrap_or(usize::MAX),
                max_input_held: config.max_input_held,
                max_sessions_per_engine: config.max_sessions_per_engine,
                max_cells_per_session: config.max_cells_per_session,
                stdin_window: config.stdin_window.max(1),
                copy_window: config.copy_window.max(MIN_COPY_WINDOW),
                max_copies: config.max_copies,
            },
            retention: Retention {
                max_age: config.retain_age,
                max_bytes: config.retain_size,
                every: RETENTION_EVERY,
            },
        }
    }

    /// Small settings for tests and benchmarks that embed a hub.
    pub(crate) fn small(hub_id: &str) -> Self {
        Self {
            hub_id: hub_id.into(),
            heartbeat: Duration::from_secs(1),
            engine_timeout: Duration::from_secs(3),
            reattach_grace: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(10),
            hello_timeout: HELLO_TIMEOUT,
            abort_wait: ABORT_WAIT,
            log_limits: LogLimits {
                keep: 1 << 20,
                window: 1 << 20,
            },
            max_engine_deaths: 3,
            limits: Limits {
                max_queued: 1000,
                max_queued_per_client: 1000,
                max_engines: 100,
                max_engine_records: 1000,
                max_followers_per_task: 10,
                max_streams_per_client: 10,
                max_follow_streams: 100,
                follow_memory: 16 << 20,
                output_in_flight: 1 << 20,
                max_input_held: 256 << 20,
                max_sessions_per_engine: 4,
                max_cells_per_session: 1000,
                stdin_window: 64 << 10,
                copy_window: MIN_COPY_WINDOW,
                max_copies: 16,
            },
            retention: Retention {
                max_age: Duration::from_secs(30 * 86_400),
                max_bytes: 10 << 30,
                every: RETENTION_EVERY,
            },
        }
    }
}
