//! The checks on this machine: the config file, which hub it all names, and the files on the
//! way to it (the socket's directory, the socket, the connection file or key file).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use warren_proto::auth::Key;
use warren_proto::config::{self, Config};
use warren_proto::connection::{self, ConnectionInfo};
use warren_proto::locate::Locator;

use super::Report;
use super::remote::TunnelCheck;
use crate::cli::HubArgs;

/// Where the hub should be, as the flags, the environment and the config file say.
#[derive(Debug)]
pub(crate) struct Found {
    /// The socket to dial.
    pub(crate) socket: PathBuf,
    /// The connection file to read, if any.
    pub(crate) connection_file: Option<PathBuf>,
    /// The key file to sign with, if any.
    pub(crate) key_file: Option<PathBuf>,
    /// The tunnel, for a hub on another machine.
    pub(crate) tunnel: Option<TunnelCheck>,
}

/// Checks the config file and finds the hub; `None` if no hub can be located at all.
pub(crate) fn config_and_hub(hub: &HubArgs, report: &mut Report) -> Option<Found> {
    match config::path() {
        None => report.ok(
            "config file",
            "none (neither XDG_CONFIG_HOME nor HOME is set)",
        ),
        Some(path) if !path.exists() => report.ok(
            "config file",
            format!("none at {} (optional)", path.display()),
        ),
        Some(path) => match Config::load_from(&path) {
            Ok(config) => report.ok(
                "config file",
                format!(
                    "{}: {} hub(s){}",
                    path.display(),
                    config.hubs.len(),
                    config
                        .default
                        .map(|name| format!(", default {name}"))
                        .unwrap_or_default()
                ),
            ),
            Err(err) => report.fail("config file", err.to_string()),
        },
    }
    let given = hub.flags();
    let from = if !given.is_empty() {
        "the flags say"
    } else if !Locator::from_env().is_empty() {
        "the environment says"
    } else {
        "the defaults say"
    };
    let expanded = match hub.locator().expand() {
        Ok(expanded) => expanded,
        Err(err) => {
            let err = crate::explain_locate_error(hub, err);
            report.fail("hub", crate::one_line(&err));
            return None;
        }
    };
    let locator = expanded.locator;
    let named = expanded.hub.map(|named| {
        let how = if named.by_default {
            "the config file's default"
        } else {
            "named by --hub or WARREN_HUB"
        };
        format!("hub {} ({how}); ", named.name)
    });
    let file = locator.connection_file();
    let tunnel = locator.remote.as_ref().map(|name| TunnelCheck::new(name));
    let socket = locator
        .socket
        .clone()
        .or_else(|| {
            locator
                .remote
                .as_ref()
                .map(|name| connection::remote_dir().join(format!("{name}.sock")))
        })
        .or_else(|| {
            file.as_deref()
                .and_then(|f| ConnectionInfo::load(f).ok())
                .map(|info| info.socket)
        })
        .or_else(|| file.as_deref().map(|f| f.with_extension("sock")))
        .unwrap_or_else(connection::default_socket);
    let way = match (&locator.remote, &file, &locator.key_file) {
        (Some(name), _, _) => format!("through the tunnel {name}"),
        (None, Some(file), _) => format!("by the connection file {}", file.display()),
        (None, None, Some(key)) => format!(
            "at {} with the key file {}",
            socket.display(),
            key.display()
        ),
        (None, None, None) => format!("at {}", socket.display()),
    };
    report.ok(
        "hub",
        format!("{}found {way}, as {from}", named.unwrap_or_default()),
    );
    Some(Found {
        socket,
        connection_file: file,
        key_file: locator.key_file,
        tunnel,
    })
}

/// Checks the socket's directory, the socket, and the connection file or key file.
pub(crate) fn files(found: &Found, report: &mut Report) {
    let me = rustix::process::geteuid().as_raw();
    let dir = found.socket.parent().unwrap_or(std::path::Path::new("/"));
    match std::fs::symlink_metadata(dir) {
        Err(_) => report.fail(
            "socket directory",
            format!(
                "{} does not exist: no hub has run there. Start one with `warren cluster start` (or `systemctl --user start warren-hub.socket`)",
                dir.display()
            ),
        ),
        Ok(meta) => match warren_proto::os::private_dir::check(dir) {
            Ok(()) => report.ok(
                "socket directory",
                format!(
                    "{} (yours, mode {:04o})",
                    dir.display(),
                    meta.permissions().mode() & 0o7777
                ),
            ),
            Err(err) => report.fail("socket directory", err.to_string()),
        },
    }
    let socket = &found.socket;
    match std::fs::symlink_metadata(socket) {
        Err(_) => report.fail(
            "socket",
            format!(
                "there is no socket at {}: no hub is running there. Start one with `warren cluster start` (or `systemctl --user start warren-hub.socket`)",
                socket.display()
            ),
        ),
        Ok(meta) if !meta.file_type().is_socket() => report.fail(
            "socket",
            format!(
                "{} is not a socket; remove it, or point --socket at the hub's",
                socket.display()
            ),
        ),
        Ok(meta) if meta.uid() != me && meta.uid() != 0 => report.fail(
            "socket",
            format!(
                "{} belongs to uid {}, not to you: it is not your hub (warren refuses to talk to it)",
                socket.display(),
                meta.uid()
            ),
        ),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.fail(
            "socket",
            format!(
                "{} is open to group or others (mode {:04o}); run `chmod 600 {}` (the hub makes it 0600; a systemd unit needs SocketMode=0600)",
                socket.display(),
                meta.permissions().mode() & 0o7777,
                socket.display()
            ),
        ),
        Ok(meta) => report.ok(
            "socket",
            format!(
                "{} (mode {:04o})",
                socket.display(),
                meta.permissions().mode() & 0o7777
            ),
        ),
    }
    if let Some(file) = &found.connection_file {
        match ConnectionInfo::load(file) {
            Ok(info) if info.hub_pid != 0 && !alive(info.hub_pid) => report.fail(
                "connection file",
                format!(
                    "{} names hub pid {}, which is not running: that hub died without removing it. Start the hub again (it rewrites the file)",
                    file.display(),
                    info.hub_pid
                ),
            ),
            Ok(info) => report.ok(
                "connection file",
                format!(
                    "{} (mode 0600{})",
                    file.display(),
                    if info.hub_pid == 0 {
                        String::new()
                    } else {
                        format!(", hub pid {}", info.hub_pid)
                    }
                ),
            ),
            Err(err) if err.is_not_found() => report.fail(
                "connection file",
                format!(
                    "there is no {}: no hub is running there (a running hub writes it). Start one, or give --key-file if the hub has one",
                    file.display()
                ),
            ),
            Err(err) => report.fail("connection file", err.to_string()),
        }
    }
    if let Some(key) = &found.key_file {
        match Key::load(key) {
            Ok(_) => report.ok("key file", format!("{} (mode 0600)", key.display())),
            Err(err) => report.fail("key file", err.to_string()),
        }
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
