//! The hub's flags. Every flag has a `WARREN_*` environment fallback.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use warren_proto::os::units::{parse_age, parse_size};

/// Serve warren's gRPC API on a private Unix socket.
///
/// The hub keeps the registry of engines and the table of tasks, hands tasks to engines as their
/// slots free up and streams every task's output to whoever follows it. It writes a connection
/// file beside its socket (mode 0600) from which engines and clients learn everything they need.
#[derive(Debug, Clone, Parser)]
#[command(name = "warren-hub", version)]
pub struct HubConfig {
    /// Unix socket to serve on [default: $XDG_RUNTIME_DIR/warren/hub.sock, else /tmp/warren-<uid>/hub.sock]
    #[arg(long, env = "WARREN_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Hex key file (mode 0600) to sign with; a new key is generated when absent. Either way
    /// the hub id, part of every signature, is new at every start
    #[arg(long, env = "WARREN_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Print the connection file of the hub serving on --socket (or the default socket) and
    /// exit; `warren tunnel` runs this over ssh, so the key travels inside the ssh session
    #[arg(long, conflicts_with = "new_key_file")]
    pub print_connection: bool,

    /// Write a new random key to PATH (mode 0600) and exit (other flags are ignored)
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,

    /// Log filter, as RUST_LOG (which it overrides), e.g. `warn` or `warren_hub=debug`
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// How far a call's timestamp may be from the hub's clock, either way, in seconds
    #[arg(long, env = "WARREN_SIGNATURE_WINDOW", default_value_t = 60, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub signature_window: u64,

    /// How many signed calls the hub remembers within the window to refuse replays
    #[arg(long, default_value_t = warren_proto::auth::DEFAULT_REPLAY_CAPACITY, value_name = "N")]
    pub replay_capacity: usize,

    /// How often the hub and its engines tell each other they are alive, in milliseconds
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u32).range(10..=60_000))]
    pub heartbeat_ms: u32,

    /// Silence after which an engine is declared dead (and the engine gives up on the hub), in milliseconds
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u32).range(50..=600_000))]
    pub engine_timeout_ms: u32,

    /// How long tasks wait for their engine to come back (after a hub restart or a lost stream), in milliseconds
    #[arg(long, default_value_t = 15_000, value_name = "MS")]
    pub reattach_grace_ms: u64,

    /// The task history database, or :memory: for none [default: $XDG_STATE_HOME/warren/hub.db, else ~/.local/state/warren/hub.db; a hub on another --socket gets one of its own there]
    #[arg(long, env = "WARREN_DB", value_name = "PATH")]
    pub db: Option<String>,

    /// Output bytes the hub keeps per task for replay; past it output still streams live
    #[arg(long, default_value = "256MiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_output_kept: u64,

    /// Recent output held in memory per task for live followers
    #[arg(long, default_value = "8MiB", value_parser = parse_size, value_name = "SIZE")]
    pub follow_window: u64,

    /// Finished tasks older than this are deleted from the history (e.g. 30d, 12h)
    #[arg(long, default_value = "30d", value_parser = parse_age, value_name = "AGE")]
    pub retain_age: Duration,

    /// Oldest finished tasks are deleted while the history's kept output is larger than this
    #[arg(long, default_value = "10GiB", value_parser = parse_size, value_name = "SIZE")]
    pub retain_size: u64,

    /// Times a task may be on an engine that dies before it is not retried again
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_engine_deaths: u32,

    /// Tasks waiting for an engine, in all
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_queued: usize,

    /// Tasks waiting for an engine, per submitting process
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_queued_per_client: usize,

    /// Stdin held for tasks that have not started, in all (each task counts its stdin); past
    /// it, Execute and Submit are refused until queued tasks start
    #[arg(long, default_value = "256MiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_input_held: u64,

    /// Engines registered at once
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_engines: usize,

    /// Engines the hub remembers (to give a returning engine its id back) beside the connected
    /// ones; the longest gone are forgotten first, and any gone longer than --retain-age
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_engine_records: usize,

    /// Clients following one task at once
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_followers_per_task: usize,

    /// Follow streams one client process may have open at once
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_streams_per_client: usize,

    /// Follow streams open at once, from all clients together
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_follow_streams: usize,

    /// Events followers may hold on their way out (replayed from the history or not yet taken
    /// by a slow client), in all; past it, followers wait
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE")]
    pub follow_memory: u64,
}

impl HubConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_ms))
    }

    /// The liveness timeout.
    pub fn engine_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.engine_timeout_ms))
    }

    /// The signature window.
    pub fn skew(&self) -> Duration {
        Duration::from_secs(self.signature_window)
    }

    /// A configuration with every default and this socket, for tests and embedding.
    pub fn for_socket(socket: PathBuf) -> Self {
        let mut config = Self::parse_from(["warren-hub"]);
        config.socket = Some(socket);
        config
    }
}
