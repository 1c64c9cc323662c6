//! The one rule, shared by every warren program, for finding a hub ([`Locator`]): from the
//! flags `--hub`, `--connection-file`, `--socket`, `--key-file` (and the CLI's `--remote`) or,
//! when none of them is given, the `WARREN_*` variables of the same names, or, when none of
//! those is set either, the config file's default hub ([`crate::config`]). What it finds is a
//! connection file ([`crate::connection`]), or a socket and a key file.

use std::path::PathBuf;

use crate::auth::{Key, KeyError};
use crate::config::{Config, ConfigError, HubEntry};
use crate::connection::{
    ConnectionError, ConnectionInfo, connection_file_for, default_connection_file, default_socket,
    remote_connection_file,
};

/// The variable for `--connection-file`.
pub const ENV_CONNECTION_FILE: &str = "WARREN_CONNECTION_FILE";
/// The variable for `--socket`.
pub const ENV_SOCKET: &str = "WARREN_SOCKET";
/// The variable for `--key-file`.
pub const ENV_KEY_FILE: &str = "WARREN_KEY_FILE";
/// The variable for the CLI's `--remote`.
pub const ENV_REMOTE: &str = "WARREN_REMOTE";
/// The variable for `--hub`.
pub const ENV_HUB: &str = "WARREN_HUB";

/// The rule of [`Locator`] in words, for `--help`.
pub const LOCATOR_HELP: &str = "\
Finding the hub: --hub NAME takes the hub called NAME in $XDG_CONFIG_HOME/warren/config.toml \
(~/.config/warren/config.toml) as if its settings were flags (flags given beside it win). \
--remote NAME (warren only) reads the connection file of the tunnel NAME; else \
--connection-file; else, with --key-file, no file is read (socket: --socket or the default; \
the hub's id, new at each of its starts, is learned from its first answer); else the file \
beside --socket; else the default $XDG_RUNTIME_DIR/warren/hub.json \
(/tmp/warren-<uid>/hub.json without XDG_RUNTIME_DIR). --socket and --key-file then replace the \
file's socket and key. The variables WARREN_HUB, WARREN_REMOTE, WARREN_CONNECTION_FILE, \
WARREN_SOCKET and WARREN_KEY_FILE stand in for these flags only when none of the flags is given: \
flags beat the environment. When neither flags nor variables say anything, the config file's \
`default` hub is used, if it names one: the environment beats the file.";

/// How a program was told to find a hub. Each field is a flag; see [`Locator::resolve`] for
/// what they mean together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locator {
    /// `--connection-file`: the hub's connection file.
    pub connection_file: Option<PathBuf>,
    /// `--socket`: the socket to dial (with a connection file: instead of the file's).
    pub socket: Option<PathBuf>,
    /// `--key-file`: the key to sign with (with a connection file: instead of the file's).
    pub key_file: Option<PathBuf>,
    /// `--remote`: the connection file of the `warren tunnel` called this.
    pub remote: Option<String>,
    /// `--hub`: the hub of this name in the config file; the other fields, when given, win
    /// over its settings.
    pub hub: Option<String>,
}

/// A hub named in the config file, and how it came to be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedHub {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub entry: HubEntry,
    /// The config file.
    pub config_file: PathBuf,
    /// Chosen as the file's `default`, not by `--hub` or `WARREN_HUB`.
    pub by_default: bool,
}

/// A locator with the config file applied ([`Locator::expand`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expanded {
    /// Where the hub is, in flags alone (`hub` is `None`).
    pub locator: Locator,
    /// The named hub it came from, if any.
    pub hub: Option<NamedHub>,
}

/// Why a [`Locator`] found no usable hub connection.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The connection file is missing or can't be used. (Its message names the file; the
    /// error is not repeated as a source.)
    #[error("{error}")]
    ConnectionFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: ConnectionError,
    },
    /// The key file can't be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The config file can't be used, or lacks the hub asked for.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tunnel's name was given with another connection file or key.
    #[error(
        "a tunnel (--remote or WARREN_REMOTE) brings its own connection file; don't combine it with --connection-file or --key-file"
    )]
    RemoteConflict,
}

impl LocateError {
    /// Whether the connection file does not exist: most likely no hub is running there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::ConnectionFile { error, .. } if error.is_not_found())
    }
}

impl Locator {
    /// The locator the environment describes: `WARREN_CONNECTION_FILE`, `WARREN_SOCKET`,
    /// `WARREN_KEY_FILE`, `WARREN_REMOTE` (empty values count as unset).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            connection_file: var(ENV_CONNECTION_FILE).map(PathBuf::from),
            socket: var(ENV_SOCKET).map(PathBuf::from),
            key_file: var(ENV_KEY_FILE).map(PathBuf::from),
            remote: var(ENV_REMOTE).map(|v| v.to_string_lossy().into_owned()),
            hub: var(ENV_HUB).map(|v| v.to_string_lossy().into_owned()),
        }
    }

    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Flags beat the environment, as a whole: these flags if any of them was given, else
    /// the environment's ([`Locator::from_env`]). Mixing the two would pair, say, a socket
    /// from an old shell setting with a connection file named on the command line.
    pub fn or_env(self) -> Self {
        if self.is_empty() {
            Self::from_env()
        } else {
            self
        }
    }

    /// Where the hub the config file calls `name` is, as flags would say it: its files, or
    /// (remote) its tunnel `name`.
    pub fn for_hub(name: &str, entry: &HubEntry) -> Self {
        if entry.is_remote() {
            Self {
                remote: Some(name.to_owned()),
                ..Self::default()
            }
        } else {
            Self {
                connection_file: entry.connection_file.clone(),
                socket: entry.socket.clone(),
                key_file: entry.key_file.clone(),
                ..Self::default()
            }
        }
    }

    /// The connection file to read: the tunnel's (`remote`), else `connection_file`, else
    /// none when a key file is given, else the one beside `socket`, else the default.
    pub fn connection_file(&self) -> Option<PathBuf> {
        match (&self.remote, &self.connection_file) {
            (Some(name), _) => Some(remote_connection_file(name)),
            (None, Some(file)) => Some(file.clone()),
            (None, None) if self.key_file.is_some() => None,
            (None, None) => Some(
                self.socket
                    .as_deref()
                    .map_or_else(default_connection_file, connection_file_for),
            ),
        }
    }

    /// Where the hub is and how to sign for it. The connection file (see
    /// [`Locator::connection_file`]) gives the socket, hub id and key; then `socket` replaces
    /// the file's socket (the file's key, through this socket: an ssh forward, say), and
    /// `key_file` replaces its key. Without a connection file the socket is `socket` (else the
    /// default) and the hub id is empty: it is new at each start of the hub, and the first
    /// call learns it from the hub's refusal (see [`Signer::learn_hub_id`]). Read afresh on
    /// each call: a hub that restarted has a new id, and may have a new key.
    pub fn resolve(&self) -> Result<ConnectionInfo, LocateError> {
        self.expand()?.locator.resolve_given()
    }

    /// This locator with the config file applied: a named hub (`hub`) gives the fields its
    /// entry sets, and the fields given here win over them; with nothing given at all, the
    /// config file's `default` hub, if it names one. The file is read only then.
    pub fn expand(&self) -> Result<Expanded, LocateError> {
        let unchanged = || {
            Ok(Expanded {
                locator: self.clone(),
                hub: None,
            })
        };
        if self.hub.is_none() && !self.is_empty() {
            return unchanged();
        }
        let (config, path) = Config::load()?;
        let (name, by_default) = match (&self.hub, &config.default) {
            (Some(name), _) => (name.clone(), false),
            (None, Some(name)) => (name.clone(), true),
            (None, None) => return unchanged(),
        };
        let path = path.ok_or_else(|| ConfigError::NoPlace { name: name.clone() })?;
        let entry = config.hub(&name, &path)?.clone();
        let base = Self::for_hub(&name, &entry);
        let locator = Self {
            connection_file: self.connection_file.clone().or(base.connection_file),
            socket: self.socket.clone().or(base.socket),
            key_file: self.key_file.clone().or(base.key_file),
            remote: self.remote.clone().or(base.remote),
            hub: None,
        };
        Ok(Expanded {
            locator,
            hub: Some(NamedHub {
                name,
                entry,
                config_file: path,
                by_default,
            }),
        })
    }

    /// [`Locator::resolve`] for a locator whose config file has been applied.
    fn resolve_given(&self) -> Result<ConnectionInfo, LocateError> {
        if self.remote.is_some() && (self.connection_file.is_some() || self.key_file.is_some()) {
            return Err(LocateError::RemoteConflict);
        }
        let key = match &self.key_file {
            Some(path) => Some(Key::load(path)?),
            None => None,
        };
        let mut info = match (self.connection_file(), &key) {
            (None, Some(key)) => ConnectionInfo::new(
                self.socket.clone().unwrap_or_else(default_socket),
                String::new(),
                key,
                0,
            ),
            // (connection_file() names a file whenever there is no key file.)
            (path, _) => {
                let path = path.unwrap_or_else(default_connection_file);
                ConnectionInfo::load(&path)
                    .map_err(|error| LocateError::ConnectionFile { path, error })?
            }
        };
        if let Some(socket) = &self.socket {
            info.socket = socket.clone();
        }
        if let Some(key) = &key {
            info.key = key.to_hex();
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locator_combines_file_socket_key_and_id_by_one_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hub.json");
        let file_key = Key::generate().expect("key");
        ConnectionInfo::new(dir.path().join("hub.sock"), "file-id".into(), &file_key, 7)
            .save(&file)
            .expect("save");
        let other_key = Key::generate().expect("key");
        let key_file = dir.path().join("key");
        other_key.save(&key_file).expect("save key");
        let forward = dir.path().join("forward.sock");

        // The file beside the socket, reached through that socket.
        let info = Locator {
            socket: Some(dir.path().join("hub.sock")),
            ..Locator::default()
        }
        .resolve()
        .expect("beside the socket");
        assert_eq!(info.hub_id, "file-id");
        assert_eq!(info.key().expect("key"), file_key);

        // A named file through another socket: the file's key and id.
        let info = Locator {
            connection_file: Some(file.clone()),
            socket: Some(forward.clone()),
            ..Locator::default()
        }
        .resolve()
        .expect("file and socket");
        assert_eq!(info.socket, forward);
        assert_eq!(info.hub_id, "file-id");
        assert_eq!(info.key().expect("key"), file_key);

        // A key file replaces the file's key, and nothing else.
        let info = Locator {
            connection_file: Some(file.clone()),
            key_file: Some(key_file.clone()),
            ..Locator::default()
        }
        .resolve()
        .expect("file and key");
        assert_eq!(info.socket, dir.path().join("hub.sock"));
        assert_eq!(info.hub_id, "file-id");
        assert_eq!(info.key().expect("key"), other_key);

        // No file at all: the socket, the key, and no hub id yet (the first call learns it).
        let bare = Locator {
            socket: Some(forward.clone()),
            key_file: Some(key_file.clone()),
            ..Locator::default()
        };
        let info = bare.resolve().expect("socket and key");
        assert_eq!(info.socket, forward);
        assert_eq!(info.hub_id, "");
        assert_eq!(info.key().expect("key"), other_key);

        let missing = Locator {
            connection_file: Some(dir.path().join("none.json")),
            ..Locator::default()
        }
        .resolve()
        .expect_err("no such file");
        assert!(missing.is_not_found(), "{missing}");
        let conflict = Locator {
            remote: Some("lab".into()),
            key_file: Some(key_file),
            ..Locator::default()
        };
        assert!(matches!(
            conflict.resolve(),
            Err(LocateError::RemoteConflict)
        ));
        assert!(Locator::default().is_empty());
    }
}
