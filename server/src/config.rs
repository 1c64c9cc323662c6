//! The hub's flags. Those a whole session shares with its engines and clients, or that a site
//! sets once, also read the environment: `WARREN_SOCKET`, `WARREN_KEY_FILE`, `WARREN_DB` and
//! `WARREN_SIGNATURE_WINDOW`; the rest are flags only (the engine strips the `WARREN_*`
//! variables that configure warren from its tasks' environment, so each one is a promise to
//! keep there too).

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use warren_proto::os::units::{parse_age, parse_size};

/// Heartbeats in the liveness timeout when none is given.
const DEFAULT_TIMEOUT_HEARTBEATS: u32 = 3;
/// Heartbeats the liveness timeout must span at least: one late heartbeat must not be a death.
const MIN_TIMEOUT_HEARTBEATS: u32 = 2;

/// Flags that parse one by one but can't work together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The liveness timeout is shorter than two heartbeats.
    #[error(
        "--engine-timeout-ms {timeout_ms} is under two heartbeats (--heartbeat-ms {heartbeat_ms}): engines would be declared dead whenever one heartbeat is late. Give --engine-timeout-ms {} or more, or leave it out for three heartbeats",
        2 * heartbeat_ms
    )]
    TimeoutUnderTwoHeartbeats {
        /// The timeout given.
        timeout_ms: u128,
        /// The heartbeat interval.
        heartbeat_ms: u128,
    },
}

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

    /// Silence after which an engine is declared dead (and the engine gives up on the hub), in
    /// milliseconds; at least twice --heartbeat-ms [default: 3 × --heartbeat-ms]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(50..=600_000))]
    pub engine_timeout_ms: Option<u32>,

    /// How long tasks wait for their engine to come back (after a hub restart or a lost stream), in milliseconds
    #[arg(long, default_value_t = 15_000, value_name = "MS")]
    pub reattach_grace_ms: u64,

    /// How long a hub stopping with its engines (`warren shutdown`) waits for them to end their
    /// tasks and for those ends to be recorded, in milliseconds
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub shutdown_grace_ms: u64,

    /// How long open connections get to close once the hub has stopped its work, in
    /// milliseconds; past it the hub exits anyway
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub drain_timeout_ms: u64,

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

    /// Streamed stdin (a foreground `warren exec`) in flight per task: taken from the client
    /// and not yet written into the task; past it the hub stops reading the client's stream
    #[arg(long, default_value = "4MiB", value_parser = parse_size, value_name = "SIZE")]
    pub stdin_window: u64,

    /// Engines registered at once
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_engines: usize,

    /// Live sessions (interpreters) on one engine; past it, OpenSessions is refused
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_sessions_per_engine: usize,

    /// Cells sent to one session and not yet ended; past it, cells are refused
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_cells_per_session: usize,

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

    /// Output received from engines and not yet committed to the history; past it the hub
    /// stops reading engines' streams until the database catches up
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE")]
    pub output_in_flight: u64,

    /// Events followers may hold on their way out (replayed from the history or not yet taken
    /// by a slow client), in all; past it, followers wait
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE")]
    pub follow_memory: u64,

    /// Bytes of one file copy (`warren cp`) in flight between the hub and an engine, each way:
    /// all the hub holds of a copy (at least 516KiB)
    #[arg(long, default_value = "4MiB", value_parser = parse_size, value_name = "SIZE")]
    pub copy_window: u64,

    /// File copies (`warren cp` calls) the hub relays at once
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_copies: usize,
}

impl HubConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_ms))
    }

    /// The liveness timeout: as given, else three heartbeats.
    pub fn engine_timeout(&self) -> Duration {
        match self.engine_timeout_ms {
            Some(ms) => Duration::from_millis(u64::from(ms)),
            None => self.heartbeat() * DEFAULT_TIMEOUT_HEARTBEATS,
        }
    }

    /// How long open connections get to close once the hub has stopped its work.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// Refuses flags that can't work together: an engine timeout under two heartbeats would
    /// declare healthy engines dead whenever one heartbeat comes a little late. The one-shot
    /// actions (`--new-key-file`, `--print-connection`) ignore such flags, so pass.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.new_key_file.is_some() || self.print_connection {
            return Ok(());
        }
        let (timeout, heartbeat) = (self.engine_timeout(), self.heartbeat());
        if timeout < heartbeat * MIN_TIMEOUT_HEARTBEATS {
            return Err(ConfigError::TimeoutUnderTwoHeartbeats {
                timeout_ms: timeout.as_millis(),
                heartbeat_ms: heartbeat.as_millis(),
            });
        }
        Ok(())
    }

    /// The signature window.
    pub fn skew(&self) -> Duration {
        Duration::from_secs(self.signature_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> HubConfig {
        HubConfig::parse_from(std::iter::once("warren-hub").chain(args.iter().copied()))
    }

    #[test]
    fn the_engine_timeout_is_three_heartbeats_unless_given() {
        assert_eq!(parse(&[]).engine_timeout(), Duration::from_secs(3));
        let slow = parse(&["--heartbeat-ms", "2000"]);
        assert_eq!(slow.engine_timeout(), Duration::from_secs(6));
        assert!(slow.check().is_ok());
        let given = parse(&["--heartbeat-ms", "200", "--engine-timeout-ms", "1000"]);
        assert_eq!(given.engine_timeout(), Duration::from_secs(1));
        assert!(given.check().is_ok());
    }

    #[test]
    fn an_engine_timeout_under_two_heartbeats_is_refused() {
        let equal = parse(&["--heartbeat-ms", "1000", "--engine-timeout-ms", "1000"]);
        let err = equal.check().expect_err("one heartbeat is not enough");
        let text = err.to_string();
        assert!(
            text.contains("--engine-timeout-ms 1000") && text.contains("--engine-timeout-ms 2000"),
            "{text}"
        );
        let just = parse(&["--heartbeat-ms", "1000", "--engine-timeout-ms", "1999"]);
        assert!(just.check().is_err());
        let enough = parse(&["--heartbeat-ms", "1000", "--engine-timeout-ms", "2000"]);
        assert!(enough.check().is_ok());
    }
}
