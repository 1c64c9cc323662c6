//! What the hub was configured with, as its operations need it.

use std::time::Duration;

use crate::state::tasklog::LogLimits;

/// Bounds on what clients and engines may make the hub hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tasks waiting for an engine, in all.
    pub max_queued: usize,
    /// Tasks waiting for an engine, per submitting process.
    pub max_queued_per_client: usize,
    /// Engines registered at once.
    pub max_engines: usize,
    /// Engines remembered (id for uuid) beside the connected ones.
    pub max_engine_records: usize,
    /// Followers of one task at once.
    pub max_followers_per_task: usize,
    /// Follow streams one client process may have open.
    pub max_streams_per_client: usize,
    /// Follow streams open at once, in all.
    pub max_follow_streams: usize,
    /// Bytes of events that followers may hold on their way out, in all.
    pub follow_memory: usize,
    /// Output bytes received from engines and not yet committed.
    pub output_in_flight: usize,
    /// Stdin bytes held for tasks not yet started (each task counts its stdin).
    pub max_input_held: u64,
}

/// What the hub was configured with that its operations need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The hub's id.
    pub hub_id: String,
    /// How often the hub and engines exchange heartbeats.
    pub heartbeat: Duration,
    /// Silence after which an engine is declared dead.
    pub engine_timeout: Duration,
    /// How long tasks wait for their engine after a hub restart.
    pub reattach_grace: Duration,
    /// How much output each task keeps and holds.
    pub log_limits: LogLimits,
    /// Engine deaths after which a task is not retried.
    pub max_engine_deaths: u32,
    /// Bounds.
    pub limits: Limits,
}

impl Settings {
    /// Small settings for tests and benchmarks that embed a hub.
    pub fn small(hub_id: &str) -> Self {
        Self {
            hub_id: hub_id.into(),
            heartbeat: Duration::from_secs(1),
            engine_timeout: Duration::from_secs(3),
            reattach_grace: Duration::from_secs(3),
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
            },
        }
    }
}
