//! The hub's flags. Every flag has a `WARREN_*` environment fallback.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

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

    /// Hex key file (mode 0600) to sign with; a new key is generated when absent
    #[arg(long, env = "WARREN_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// The hub's id, part of every signature [default: derived from --key-file, else random]
    #[arg(long, env = "WARREN_HUB_ID", value_name = "ID")]
    pub hub_id: Option<String>,

    /// Write a new random key to PATH (mode 0600) and exit
    #[arg(long, value_name = "PATH", conflicts_with_all = ["socket", "key_file"])]
    pub new_key_file: Option<PathBuf>,

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

    /// Output bytes the hub keeps per task for replay; past it output still streams live
    #[arg(long, default_value = "32MiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_output_kept: u64,

    /// Output past the cap held briefly so that a follower a little behind misses nothing
    #[arg(long, default_value = "8MiB", value_parser = parse_size, value_name = "SIZE")]
    pub follow_window: u64,
}

impl HubConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_ms))
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

/// Parses a byte size: a whole number with an optional unit (K, M, G, KiB, MiB, GiB, KB...).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like 4096, 64KiB or 32MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
