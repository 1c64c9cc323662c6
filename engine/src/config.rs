//! The engine's flags, and the fixed limits beside them.
//!
//! Seven flags have a `WARREN_*` environment fallback, listed in [`ENV_FALLBACKS`]: `--slots`,
//! `--uuid` and `--spill-dir` each have their own, and the four that locate the hub
//! (`--hub`, `--connection-file`, `--socket`, `--key-file`) fall back to theirs only as a group,
//! and to the config file's default hub after that (see `warren_proto::locate::Locator`). The others are flags only: `--log` beats `RUST_LOG`,
//! and the timings and memory bound are set where the engine is started. None of these
//! variables reaches a task (they are all in `warren_proto::OWN_ENV_VARS`).

use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use warren_proto::os::units::parse_size;

/// The environment variables the engine reads in place of its flags, as the module doc says.
pub const ENV_FALLBACKS: &[&str] = &[
    warren_proto::locate::ENV_CONNECTION_FILE,
    warren_proto::locate::ENV_SOCKET,
    warren_proto::locate::ENV_KEY_FILE,
    warren_proto::locate::ENV_HUB,
    "WARREN_SLOTS",
    "WARREN_ENGINE_UUID",
    "WARREN_SPILL_DIR",
];

/// How long a task's output may keep flowing after its process group is gone (a process that
/// escaped the group may hold a pipe open); then the engine stops reading it.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// The first wait before reconnecting to a hub; it doubles up to `--max-backoff-ms`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Run tasks for a warren hub.
///
/// The engine finds the hub from its connection file (or --socket and --key-file), registers
/// on one stream, runs each task it is given as a child process in its own process group, and
/// streams the task's output back as it is produced. When the hub goes away it reconnects with
/// backoff, keeping its uuid so the hub gives it its old id back.
#[derive(Debug, Clone, Parser)]
#[command(name = "warren-engine", version, after_help = warren_proto::locate::LOCATOR_HELP)]
pub struct EngineConfig {
    /// The hub's connection file [env: WARREN_CONNECTION_FILE] [default: the one beside
    /// --socket, else beside the default socket]
    #[arg(long, value_name = "PATH")]
    pub connection_file: Option<PathBuf>,

    /// The hub's socket [env: WARREN_SOCKET]; with a connection file: that file's key and id,
    /// through this socket
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Hex key file (mode 0600) to sign with instead of a connection file's key
    /// [env: WARREN_KEY_FILE]; without a connection file, the hub's id (new at each of its
    /// starts) is learned from its first answer
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// The hub called NAME in $XDG_CONFIG_HOME/warren/config.toml [env: WARREN_HUB]; the
    /// other flags above win over its settings
    #[arg(long, value_name = "NAME")]
    pub hub: Option<String>,

    /// Tasks to run at once
    #[arg(long, env = "WARREN_SLOTS", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub slots: u32,

    /// A label the hub shows and can select on, as key=value (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// The engine's stable identity [default: a new random uuid]
    #[arg(long, env = "WARREN_ENGINE_UUID", value_name = "UUID")]
    pub uuid: Option<String>,

    /// Time a task gets between SIGTERM and SIGKILL on timeout or abort, in milliseconds
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub kill_grace_ms: u64,

    /// How long the end of a task killed by a signal the engine did not send (SIGTERM,
    /// SIGKILL, SIGINT, SIGHUP, or a shell's exit status 128 + one) is held back before it is
    /// reported, in milliseconds. When the same signal stops the engine, as Slurm's scancel and
    /// time limit do (they signal every process of a job), the engine says goodbye first, and
    /// the task counts as lost with its engine (retried when allowed) instead of failed
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub outside_kill_hold_ms: u64,

    /// When the engine exits: how long, beyond --kill-grace-ms, it waits for the tasks it
    /// stopped to end and for their ends to reach the hub, in milliseconds
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub report_grace_ms: u64,

    /// Longest wait between reconnection attempts, in milliseconds
    #[arg(long, default_value_t = 2000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..))]
    pub max_backoff_ms: u64,

    /// Output per task held in memory until the hub acknowledges it; past it, the task waits
    /// (or, while the hub is away, output goes to a spill file)
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "SIZE")]
    pub outbox_memory: u64,

    /// Refuse file copies (`warren cp`): the engine only runs tasks
    #[arg(long)]
    pub no_files: bool,

    /// Internal: watch the engine with this pid and clean up after it if it is killed
    #[arg(long, hide = true, value_name = "PID")]
    pub guard: Option<u32>,

    /// Log filter, as RUST_LOG (which it overrides), e.g. `warn` or `warren_engine=debug`
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// Where output waits on disk while the hub is away: the engine makes a directory of its
    /// own inside DIR (mode 0700) and removes only that, with the files it wrote, when it exits
    /// [default: the runtime directory, beside the default socket]
    #[arg(long, env = "WARREN_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// Where the hub is, by the rule every warren program shares: these flags if any of them
    /// was given, else the `WARREN_*` variables of the same names.
    pub fn locator(&self) -> warren_proto::locate::Locator {
        warren_proto::locate::Locator {
            connection_file: self.connection_file.clone(),
            socket: self.socket.clone(),
            key_file: self.key_file.clone(),
            remote: None,
            hub: self.hub.clone(),
        }
        .or_env()
    }

    /// The grace period between SIGTERM and SIGKILL.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// How long the end of a task killed from outside is held back.
    pub fn outside_kill_hold(&self) -> Duration {
        Duration::from_millis(self.outside_kill_hold_ms)
    }

    /// How long an exiting engine waits for the tasks it stopped: the kill grace, then the
    /// time their ends take to reach the hub.
    pub fn stop_wait(&self) -> Duration {
        self.kill_grace() + Duration::from_millis(self.report_grace_ms)
    }

    /// The directory inside which the engine makes its spill directory.
    pub fn spill_parent(&self) -> PathBuf {
        self.spill_dir
            .clone()
            .unwrap_or_else(warren_proto::connection::runtime_dir)
    }

    /// The labels as a map.
    pub fn label_map(&self) -> HashMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not a label; write it as key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::BTreeSet;

    #[test]
    fn the_help_promises_exactly_the_fallbacks_there_are() {
        let listed: BTreeSet<&str> = ENV_FALLBACKS.iter().copied().collect();
        let help = EngineConfig::command().render_long_help().to_string();
        let promised: BTreeSet<&str> = help
            .match_indices("[env: ")
            .filter_map(|(at, _)| help[at + 6..].split([']', '=']).next())
            .collect();
        assert_eq!(promised, listed, "{help}");
        let by_clap: BTreeSet<String> = EngineConfig::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        for name in &by_clap {
            assert!(
                listed.contains(name.as_str()),
                "{name} is not in ENV_FALLBACKS"
            );
        }
        for name in ENV_FALLBACKS {
            assert!(
                warren_proto::OWN_ENV_VARS.contains(name),
                "{name} would reach every task's environment"
            );
        }
    }

    #[test]
    fn an_exiting_engine_waits_for_the_kill_grace_and_the_report_grace() {
        let config = EngineConfig::parse_from([
            "warren-engine",
            "--kill-grace-ms",
            "500",
            "--report-grace-ms",
            "250",
        ]);
        assert_eq!(config.stop_wait(), Duration::from_millis(750));
        let default = EngineConfig::parse_from(["warren-engine"]);
        assert_eq!(default.stop_wait(), Duration::from_secs(5));
    }
}
