//! The user's config file: named hubs and a default, as ssh_config names hosts and kubeconfig
//! names contexts.
//!
//! It lives at `$XDG_CONFIG_HOME/warren/config.toml` (else `~/.config/warren/config.toml`) and
//! is optional. A hub is either local (a connection file, or a socket and a key file) or remote
//! (a host reached through `warren tunnel`, with the tunnel's settings):
//!
//! ```toml
//! default = "here"
//!
//! [hubs.here]                       # the hub systemd starts, before its connection file exists
//! key_file = "~/.config/warren/hub.key"
//!
//! [hubs.lab]                        # `warren --hub lab tunnel`, then `warren --hub lab exec ...`
//! host = "me@lab.example.org"
//! remote_socket = "/run/user/1000/warren/hub.sock"
//! ssh = "ssh -F ~/.ssh/lab_config"
//! ```
//!
//! [`Locator`](crate::locate::Locator) reads it: `--hub NAME` (or `WARREN_HUB`) picks a hub,
//! and when neither flags nor variables say where the hub is, `default` does.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the config file can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Someone else could change it, and so redirect every call.
    #[error(
        "the config file {path} is {why}; someone else could point warren at their hub. Run `chmod go-w {path}` (and own it)"
    )]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// It is not valid TOML, or holds unknown keys.
    #[error("the config file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        reason: String,
    },
    /// A hub was asked for by name, and there is no place for a config file.
    #[error(
        "hub {name} is looked up in $XDG_CONFIG_HOME/warren/config.toml or ~/.config/warren/config.toml, but neither XDG_CONFIG_HOME nor HOME is set"
    )]
    NoPlace {
        /// The name asked for.
        name: String,
    },
    /// A hub was asked for by a name the file does not have.
    #[error("there is no hub called {name} in {path}{}", known_names(.known))]
    UnknownHub {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// The names it has.
        known: Vec<String>,
    },
    /// A hub's entry mixes settings that can't work together, or has none.
    #[error("hub {name} in {path}: {reason}")]
    BadHub {
        /// The hub's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn known_names(names: &[String]) -> String {
    if names.is_empty() {
        " (it names none; add a [hubs.NAME] table)".to_owned()
    } else {
        format!(" (it names {})", names.join(", "))
    }
}

/// The config file's contents.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The hub to use when neither flags nor the environment say where the hub is.
    pub default: Option<String>,
    /// The named hubs.
    #[serde(default)]
    pub hubs: BTreeMap<String, HubEntry>,
}

/// One named hub: local (a connection file, or a socket and a key file) or remote (`host`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HubEntry {
    /// The hub's connection file.
    pub connection_file: Option<PathBuf>,
    /// The hub's socket (with a connection file: instead of the file's).
    pub socket: Option<PathBuf>,
    /// A key file to sign with (no connection file needed; the hub's id is learned).
    pub key_file: Option<PathBuf>,
    /// A machine the hub runs on, as ssh names it: the hub is reached through the tunnel named
    /// after this entry (`warren --hub NAME tunnel` starts it).
    pub host: Option<String>,
    /// The hub's socket on `host` (default: the default socket there).
    pub remote_socket: Option<String>,
    /// How to run `warren-hub` on `host`.
    pub remote_hub_command: Option<String>,
    /// The ssh command for `host`, split on spaces.
    pub ssh: Option<String>,
}

impl HubEntry {
    /// Whether the hub is on another machine, reached through a tunnel.
    pub fn is_remote(&self) -> bool {
        self.host.is_some()
    }
}

/// The config file's place: `$XDG_CONFIG_HOME/warren/config.toml`, else
/// `$HOME/.config/warren/config.toml`; `None` when neither variable is set.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")))?;
    Some(base.join("warren").join("config.toml"))
}

impl Config {
    /// Reads the config file at its place ([`path`]); an absent file is an empty config.
    pub fn load() -> Result<(Self, Option<PathBuf>), ConfigError> {
        match path() {
            Some(path) => Ok((Self::load_from(&path)?, Some(path))),
            None => Ok((Self::default(), None)),
        }
    }

    /// Reads and checks a config file; an absent file is an empty config. Like ssh with its
    /// config, it refuses a file that someone else owns or may write.
    pub fn load_from(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        check_owner(path)?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            reason: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("/"));
        for (name, hub) in &mut config.hubs {
            hub.check(name, path)?;
            for file in [&mut hub.connection_file, &mut hub.socket, &mut hub.key_file]
                .into_iter()
                .flatten()
            {
                *file = expand(file, base);
            }
        }
        if let Some(name) = &config.default
            && !config.hubs.contains_key(name)
        {
            return Err(config.unknown(name, path));
        }
        Ok(config)
    }

    /// The hub called `name`.
    pub fn hub(&self, name: &str, path: &Path) -> Result<&HubEntry, ConfigError> {
        self.hubs.get(name).ok_or_else(|| self.unknown(name, path))
    }

    fn unknown(&self, name: &str, path: &Path) -> ConfigError {
        ConfigError::UnknownHub {
            name: name.to_owned(),
            path: path.to_owned(),
            known: self.hubs.keys().cloned().collect(),
        }
    }
}

impl HubEntry {
    /// Refuses an entry with no way to the hub, or with a host beside local files.
    fn check(&self, name: &str, path: &Path) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::BadHub {
            name: name.to_owned(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let local =
            self.connection_file.is_some() || self.socket.is_some() || self.key_file.is_some();
        let tunnel =
            self.remote_socket.is_some() || self.remote_hub_command.is_some() || self.ssh.is_some();
        match (local, self.host.is_some()) {
            (true, true) => Err(bad(
                "`host` is reached through its tunnel's own connection file; don't combine it with connection_file, socket or key_file",
            )),
            (false, false) => Err(bad(
                "say where the hub is: connection_file, socket and/or key_file here, or host for one on another machine",
            )),
            (true, false) if tunnel => Err(bad(
                "remote_socket, remote_hub_command and ssh are tunnel settings; they need a host",
            )),
            _ => Ok(()),
        }
    }
}

/// Refuses a config file owned by another user (root aside) or writable by group or others.
fn check_owner(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    let why = if meta.uid() != me && meta.uid() != 0 {
        Some(format!(
            "owned by uid {}, not by you (uid {me})",
            meta.uid()
        ))
    } else if meta.permissions().mode() & 0o022 != 0 {
        Some(format!(
            "writable by group or others (mode {:04o})",
            meta.permissions().mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(ConfigError::Unsafe {
            path: path.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// A path as written in the file: `~/` is the home directory, `$NAME` and `${NAME}` are
/// environment variables (`$XDG_RUNTIME_DIR/warren/hub.sock`), and a relative path is relative
/// to the file's directory.
fn expand(path: &Path, base: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let text = match text.strip_prefix("~/") {
        Some(rest) => match std::env::var("HOME") {
            Ok(home) => format!("{home}/{rest}"),
            Err(_) => text.into_owned(),
        },
        None => text.into_owned(),
    };
    let expanded = PathBuf::from(expand_vars(&text));
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

/// Replaces `$NAME` and `${NAME}` with the variable's value (empty if unset).
fn expand_vars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&std::env::var(name).unwrap_or_default());
            rest = next;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::Locator;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }

    #[test]
    fn named_hubs_become_locators() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            r#"
default = "lab"
[hubs.lab]
host = "me@lab"
ssh = "ssh -p 2222"
[hubs.here]
socket = "/run/x/hub.sock"
key_file = "keys/hub.key"
"#,
        );
        let config = Config::load_from(&path).expect("load");
        assert_eq!(config.default.as_deref(), Some("lab"));
        let lab = config.hub("lab", &path).expect("lab");
        assert!(lab.is_remote());
        assert_eq!(Locator::for_hub("lab", lab).remote.as_deref(), Some("lab"));
        let here = Locator::for_hub("here", config.hub("here", &path).expect("here"));
        assert_eq!(here.socket, Some(PathBuf::from("/run/x/hub.sock")));
        assert_eq!(here.key_file, Some(dir.path().join("keys/hub.key")));
        let err = config.hub("nowhere", &path).expect_err("unknown");
        assert!(err.to_string().contains("it names here, lab"), "{err}");
    }

    #[test]
    fn mistakes_are_refused_with_the_line_or_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, words) in [
            ("[hubs.a]\nsockett = \"/x\"\n", "unknown field"),
            (
                "[hubs.a]\nhost = \"h\"\nkey_file = \"/k\"\n",
                "don't combine",
            ),
            ("[hubs.a]\nssh = \"ssh\"\nsocket = \"/s\"\n", "need a host"),
            ("[hubs.a]\n", "say where the hub is"),
            (
                "default = \"b\"\n[hubs.a]\nsocket = \"/s\"\n",
                "no hub called b",
            ),
            ("default = \n", "not valid"),
        ] {
            let path = write(dir.path(), text);
            let err = Config::load_from(&path).expect_err(text);
            assert!(err.to_string().contains(words), "{text:?}: {err}");
        }
        let path = write(dir.path(), "[hubs.a]\nsocket = \"/s\"\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = Config::load_from(&path).expect_err("world-writable");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        assert_eq!(
            Config::load_from(&dir.path().join("none.toml")).expect("absent"),
            Config::default()
        );
    }

    #[test]
    fn paths_expand_home_and_variables() {
        let base = Path::new("/etc/warren");
        assert_eq!(expand(Path::new("/a/b"), base), PathBuf::from("/a/b"));
        assert_eq!(expand(Path::new("k"), base), PathBuf::from("/etc/warren/k"));
        assert_eq!(expand_vars("a$"), "a$");
        assert_eq!(expand_vars("${}x"), "${}x");
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(expand_vars("$HOME/x"), format!("{home}/x"));
        assert_eq!(expand_vars("${HOME}x"), format!("{home}x"));
    }
}
