//! The hub's only listener: a Unix socket, mode 0600, inside a directory only its owner can enter.
//!
//! The socket is bound inside a directory that is checked (or created) to be owned by the hub's
//! user with mode 0700, so no other user can reach it even in the instant between `bind` and
//! `chmod`: the umask is process-wide and is never touched. Connections from any other uid are
//! dropped on accept, after reading their peer credentials.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};

use warren_proto::os::PathError;
use warren_proto::os::private_dir::{self, DirError};
use warren_proto::socket::QuietStream;

/// Why the hub cannot serve on the socket it was given.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The socket's directory is not private.
    #[error("socket {0}")]
    Dir(#[from] DirError),
    /// A hub already answers on the socket.
    #[error(
        "a hub is already serving on {0}; stop it with `warren shutdown` or choose another --socket"
    )]
    AlreadyServing(PathBuf),
    /// The path is taken by something that is not a socket.
    #[error("{0} exists and is not a socket; remove it or choose another --socket")]
    NotASocket(PathBuf),
    /// A filesystem call failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

fn io_err<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| PathError::at(context, path)(source).into()
}

/// Makes the socket path absolute, so the connection file names it from anywhere.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, SocketError> {
    std::path::absolute(path).map_err(io_err("resolve", path))
}

/// Removes a leftover socket nobody answers on; refuses if a hub answers or the path is no socket.
fn clear_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::AlreadyServing(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "replacing a stale socket nobody listens on");
            fs::remove_file(path).map_err(io_err("remove stale socket", path))
        }
        Err(e) => Err(io_err("probe existing socket", path)(e)),
    }
}

/// Checks that the hub could serve at `path`: a private directory, and no hub answering
/// there (a leftover socket is removed).
pub(crate) fn check(path: &Path) -> Result<(), SocketError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    private_dir::prepare(dir)?;
    clear_stale(path)
}

/// Binds the socket at `path` (absolute) with mode 0600 inside its private directory.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    check(path)?;
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            SocketError::AlreadyServing(path.to_owned())
        } else {
            io_err("bind", path)(e)
        }
    })?;
    // Nobody else can enter the directory, so the socket's mode before this line is moot.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(io_err("set the mode of", path))?;
    Ok(listener)
}

/// A listening socket handed over by systemd (already checked by `activation`), for tokio.
pub(crate) fn from_passed(
    listener: std::os::unix::net::UnixListener,
) -> Result<UnixListener, SocketError> {
    let path = PathBuf::from("the socket systemd passed");
    listener
        .set_nonblocking(true)
        .map_err(io_err("make non-blocking", &path))?;
    UnixListener::from_std(listener).map_err(io_err("serve", &path))
}

/// Accepted connections, keeping only those whose peer runs as `uid`.
pub(crate) fn incoming(
    listener: UnixListener,
    uid: u32,
) -> impl Stream<Item = io::Result<QuietStream>> {
    UnixListenerStream::new(listener).filter_map(move |conn| match conn {
        Ok(stream) => match QuietStream::from_tokio(stream) {
            Ok(stream) if stream.peer().uid == uid => Some(Ok(stream)),
            Ok(stream) => {
                tracing::warn!(
                    peer_uid = stream.peer().uid,
                    peer_pid = stream.peer().pid,
                    "refused a connection from another user"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a connection whose credentials can't be read");
                None
            }
        },
        Err(e) => Some(Err(e)),
    })
}
