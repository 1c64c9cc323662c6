//! The connection file: where a hub's socket is and which key and id it signs with.
//!
//! The hub writes it beside its socket (`hub.sock` → `hub.json`) with mode 0600 when it starts
//! and removes it when it stops. Engines and clients need nothing else to reach the hub.
//! Which connection file a program reads is [`crate::locate`]'s rule.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::auth::{Key, KeyError, Signer};
use crate::private_file::{self, PrivateFileError};

/// The connection file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a connection file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The file is missing, too open, or unreadable.
    #[error("{0}")]
    File(#[from] PrivateFileError),
    /// The file is not a warren connection file.
    #[error("{path} is not a warren connection file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key inside is not valid.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl ConnectionError {
    /// Whether the file does not exist (no hub has written it, or its hub stopped).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::File(PrivateFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a connection file holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The file format version.
    pub version: u32,
    /// The hub's Unix socket.
    pub socket: PathBuf,
    /// The hub's id, part of every signature.
    pub hub_id: String,
    /// The key, 64 hex digits.
    pub key: String,
    /// The hub's process id, for people and scripts; 0 if unknown.
    #[serde(default)]
    pub hub_pid: u32,
}

impl ConnectionInfo {
    /// A connection to the hub on `socket` with this id and key.
    pub fn new(socket: PathBuf, hub_id: String, key: &Key, hub_pid: u32) -> Self {
        Self {
            version: FORMAT_VERSION,
            socket,
            hub_id,
            key: key.to_hex(),
            hub_pid,
        }
    }

    /// Reads a connection file after the private-file checks.
    pub fn load(path: &Path) -> Result<Self, ConnectionError> {
        let text = private_file::read(path)?;
        let malformed = |reason: String| ConnectionError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let info: Self = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        if info.version != FORMAT_VERSION {
            return Err(malformed(format!(
                "format version {} (this warren reads version {FORMAT_VERSION})",
                info.version
            )));
        }
        info.key()?;
        Ok(info)
    }

    /// Writes the file with mode 0600, atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConnectionError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| ConnectionError::Malformed {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        text.push('\n');
        private_file::write(path, text.as_bytes())?;
        Ok(())
    }

    /// The key.
    pub fn key(&self) -> Result<Key, KeyError> {
        Key::from_hex(&self.key, "the connection file's key")
    }

    /// A signer for calls to this hub.
    pub fn signer(&self) -> Result<Signer, KeyError> {
        Ok(Signer::new(&self.key()?, &self.hub_id))
    }
}

/// The per-user directory for sockets and connection files:
/// `$XDG_RUNTIME_DIR/warren`, else `/tmp/warren-<uid>`.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("warren"),
        _ => PathBuf::from(format!(
            "/tmp/warren-{}",
            rustix::process::getuid().as_raw()
        )),
    }
}

/// The hub's socket when none is given.
pub fn default_socket() -> PathBuf {
    runtime_dir().join("hub.sock")
}

/// The connection file that belongs to a socket: the same path ending in `.json`.
pub fn connection_file_for(socket: &Path) -> PathBuf {
    socket.with_extension("json")
}

/// Where `warren tunnel` keeps its local sockets and connection files: `<runtime dir>/remote`.
pub fn remote_dir() -> PathBuf {
    runtime_dir().join("remote")
}

/// The connection file of the tunnel called `name`.
pub fn remote_connection_file(name: &str) -> PathBuf {
    remote_dir().join(format!("{name}.json"))
}

/// The connection file when none is given.
pub fn default_connection_file() -> PathBuf {
    connection_file_for(&default_socket())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.json");
        let key = Key::generate().expect("key");
        let info = ConnectionInfo::new(dir.path().join("hub.sock"), "abc".into(), &key, 7);
        info.save(&path).expect("save");
        let loaded = ConnectionInfo::load(&path).expect("load");
        assert_eq!(loaded, info);
        assert_eq!(loaded.key().expect("key"), key);

        std::fs::write(&path, "{\"version\":1}").expect("write");
        let err = ConnectionInfo::load(&path).expect_err("incomplete file");
        assert!(
            err.to_string().contains("not a warren connection file"),
            "{err}"
        );
    }

    #[test]
    fn the_connection_file_sits_beside_its_socket() {
        assert_eq!(
            connection_file_for(Path::new("/run/x/hub.sock")),
            PathBuf::from("/run/x/hub.json")
        );
    }
}
