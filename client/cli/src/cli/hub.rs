//! Where the hub is (`--hub`, `--connection-file`, `--socket`, `--key-file`, `--remote`),
//! and how a hint names it again (`warren --socket S ...`).

use clap::Args;
use std::path::{Path, PathBuf};
use warren_proto::connection;
use warren_proto::locate::Locator;

/// Where the hub is. Each flag's `WARREN_*` variable stands in for it only when none of these
/// flags is given (see `warren_proto::locate::Locator`).
#[derive(Debug, Default, Args)]
pub(crate) struct HubArgs {
    /// The hub called NAME in $XDG_CONFIG_HOME/warren/config.toml, as if its settings were
    /// flags (the flags below win over them) [env: WARREN_HUB] [default: the file's `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) hub: Option<String>,

    /// The hub's connection file [env: WARREN_CONNECTION_FILE] [default: beside --socket, else $XDG_RUNTIME_DIR/warren/hub.json, else /tmp/warren-<uid>/hub.json]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) connection_file: Option<PathBuf>,

    /// The hub's socket [env: WARREN_SOCKET]; with a connection file: that file's key and id, through this socket
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,

    /// Hex key file (mode 0600) to sign with instead of a connection file's key [env: WARREN_KEY_FILE]; without a connection file, the hub's id (new at each of its starts) is learned from its first answer
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,

    /// Use the hub reached through the tunnel called NAME (see `warren tunnel`) [env: WARREN_REMOTE]
    #[arg(long, global = true, value_name = "NAME",
          conflicts_with_all = ["connection_file", "key_file"])]
    pub(crate) remote: Option<String>,
}

impl HubArgs {
    /// The flags given on the command line, without the environment.
    pub(crate) fn flags(&self) -> Locator {
        Locator {
            connection_file: self.connection_file.clone(),
            socket: self.socket.clone(),
            key_file: self.key_file.clone(),
            remote: self.remote.clone(),
            hub: self.hub.clone(),
        }
    }

    /// Where the hub is: these flags if any was given, else the environment's.
    pub(crate) fn locator(&self) -> Locator {
        self.flags().or_env()
    }

    /// The flags to repeat in a hint (`warren --socket S attach ...`): those given on the
    /// command line; the environment still holds the rest.
    pub(crate) fn hint(&self) -> String {
        let flags = self.flags();
        let mut text = String::from("warren");
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                text.push_str(&format!(" {flag} {}", shell_word(&value)));
            }
        };
        add("--hub", flags.hub);
        add("--remote", flags.remote);
        add(
            "--connection-file",
            flags.connection_file.map(|p| p.display().to_string()),
        );
        add("--socket", flags.socket.map(|p| p.display().to_string()));
        add(
            "--key-file",
            flags.key_file.map(|p| p.display().to_string()),
        );
        text
    }
}

/// A word as a POSIX shell reads it back, quoted only if it must be.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `warren`, with `--socket S` when S is not the default socket: how the hints of a local
/// cluster begin.
pub(crate) fn socket_hint(socket: &Path) -> String {
    let default = std::path::absolute(connection::default_socket()).ok();
    if default.as_deref() == Some(socket) {
        "warren".to_owned()
    } else {
        format!(
            "warren --socket {}",
            shell_word(&socket.display().to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_quote_only_what_needs_it() {
        assert_eq!(
            shell_word("/run/user/0/warren/hub.sock"),
            "/run/user/0/warren/hub.sock"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
