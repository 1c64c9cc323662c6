//! warren's wire contract, shared by the hub, the engines and every client.
//!
//! - [`v1`]: the generated gRPC services and messages of package `warren.v1`
//!   (`Execution`, `Control`, `Registration`, `Sessions`), built from `proto/` without `protoc`.
//! - [`auth`]: the one HMAC-SHA256 call-signing scheme: keys, signing, verification and the
//!   replay cache.
//! - [`connection`]: the connection file that tells engines and clients where a hub is and
//!   which key it trusts, and the default places for it.
//! - [`locate`]: the one rule ([`locate::Locator`]) by which every program finds a hub from
//!   its flags, its environment and the config file.
//! - [`config`]: the user's config file, `$XDG_CONFIG_HOME/warren/config.toml`: named hubs
//!   (local, or remote through a tunnel) and a default one.
//! - [`passthrough`]: message streams whose output and stdin bytes reach HTTP/2 without
//!   being copied.
//! - [`socket`]: the Unix stream every gRPC connection runs on, woken for reading only.
//! - [`transport`]: dialing a hub's Unix socket as a tonic channel.
//! - [`private_file`]: the ssh-style check that keeps secrets (the key, the connection file)
//!   in files only their owner can reach, and the one owner-and-mode check
//!   ([`private_file::check_private`]) every warren program uses.
//!
//! Apart from the contract, and only for the warren programs (the SDK enables neither):
//! - `os` (feature `os`): children that die with their parent, private directories, signal
//!   names, sizes and ages as people write them;
//! - `os::program` (feature `program`, which implies `os`): the first steps of every warren
//!   binary (flags, logging, runtime).

pub mod auth;
pub mod config;
pub mod connection;
pub mod locate;
#[cfg(feature = "os")]
pub mod os;
pub mod passthrough;
pub mod private_file;
pub mod socket;
pub mod transport;

/// The generated code for protobuf package `warren.v1`. With the feature `json`, every message
/// and enum is also `serde::Serialize` and `Deserialize` in the protobuf JSON mapping, as
/// grpcurl prints it.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("warren.v1");
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/warren.v1.serde.rs"));
}

/// The encoded descriptor set of every `warren.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warren_descriptor");

/// The protocol version this build speaks. Peers must speak the same one.
pub const PROTOCOL_VERSION: u32 = 2;

/// This build's software version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Checks a peer's protocol version, explaining a mismatch in terms of both versions.
pub fn check_protocol_version(peer: &str, theirs: u32) -> Result<(), String> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(format!(
            "{peer} speaks warren protocol {theirs} but this hub speaks protocol {PROTOCOL_VERSION}; \
             run the same warren release on both sides"
        ))
    }
}

/// Every environment variable that configures a warren program. Engines keep them (and the
/// shell's `_`) out of their tasks' environments, and `warren cluster start` out of its
/// children's, passing what they need as flags instead.
pub const OWN_ENV_VARS: &[&str] = &[
    locate::ENV_CONNECTION_FILE,
    locate::ENV_SOCKET,
    locate::ENV_KEY_FILE,
    // No longer read (the hub id is learned), but an old shell may still set it.
    "WARREN_HUB_ID",
    locate::ENV_REMOTE,
    locate::ENV_HUB,
    "WARREN_DB",
    "WARREN_SIGNATURE_WINDOW",
    "WARREN_SLOTS",
    "WARREN_ENGINE_UUID",
    "WARREN_SPILL_DIR",
    "WARREN_SSH",
    "WARREN_RECONNECT_TIMEOUT",
];

/// Microseconds since the Unix epoch, the unit of every timestamp on the wire.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl v1::TaskState {
    /// Whether the task has ended and will not change again.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::Unspecified | Self::Waiting | Self::Queued | Self::Running
        )
    }

    /// The state's short lower-case name, as the CLI shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::TimedOut => "timed-out",
            Self::Lost => "lost",
            Self::Waiting => "waiting",
        }
    }
}

impl v1::SessionState {
    /// Whether the session has an interpreter (starting, idle or busy).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Starting | Self::Idle | Self::Busy)
    }

    /// The state's short lower-case name, as the CLI shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Dead => "dead",
            Self::Closed => "closed",
        }
    }
}

impl v1::SessionKind {
    /// The kind's lower-case name, as the CLI takes and shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unknown",
            Self::Python => "python",
            Self::Bash => "bash",
            Self::Custom => "custom",
        }
    }
}
