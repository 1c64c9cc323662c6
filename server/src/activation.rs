//! systemd's side of the hub's life: a listening socket handed over by socket activation
//! (`LISTEN_FDS`, `LISTEN_PID`), and readiness told to the service manager (`sd_notify`).
//!
//! A passed socket must meet the rules the hub's own socket meets (see `socket`): a Unix
//! stream socket that is listening, bound to a path (not abstract), of mode 0600 or tighter,
//! owned by the hub's user, inside a directory only that user can enter. Anything else is
//! refused, saying which setting of the `.socket` unit to change, before a byte is served.
//! The socket stays systemd's: the hub never removes it, so the next start finds it again.

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use warren_proto::os::private_dir::{self, DirError};

/// The first passed descriptor, by the protocol (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// Why a passed socket was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The variables are set but can't be read.
    #[error("socket activation: {0}")]
    Malformed(String),
    /// More than one socket was passed.
    #[error(
        "socket activation passed {0} sockets; warren-hub serves one. Give the .socket unit one ListenStream="
    )]
    SeveralSockets(usize),
    /// The descriptor is not a listening Unix stream socket bound to a path.
    #[error(
        "socket activation passed {0}; warren-hub serves only a listening Unix stream socket bound to a path: use ListenStream=%t/warren/hub.sock (no ListenDatagram=, no IP address, no Accept=yes)"
    )]
    WrongKind(String),
    /// Its directory is not private.
    #[error("socket activation: the socket's {0}. Set DirectoryMode=0700 in the .socket unit")]
    Dir(#[from] DirError),
    /// The socket file is open to others or owned by someone else.
    #[error(
        "socket activation: the socket {path} is {why}; set SocketMode=0600 in the .socket unit (and run it as a user unit)"
    )]
    TooOpen {
        /// The socket.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `--socket` names another socket than the one passed.
    #[error(
        "--socket {given} differs from the socket systemd passed ({passed}); leave --socket out or make them the same"
    )]
    OtherSocket {
        /// The flag's path.
        given: PathBuf,
        /// The passed socket's path.
        passed: PathBuf,
    },
    /// A check on the descriptor failed.
    #[error("socket activation: cannot {0}: {1}")]
    Io(&'static str, io::Error),
}

/// The listening socket systemd passed, and its path; `None` when the hub was not
/// socket-activated (no `LISTEN_FDS`, or one meant for another process).
pub(crate) fn passed_listener(
    socket_flag: Option<&Path>,
) -> Result<Option<(UnixListener, PathBuf)>, ActivationError> {
    let (Some(pid), Some(count)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| ActivationError::Malformed(format!("LISTEN_PID={pid} is not a pid")))?;
    // Inherited from a parent that was activated: not ours to take.
    if pid != std::process::id() {
        return Ok(None);
    }
    let count: usize = count
        .parse()
        .map_err(|_| ActivationError::Malformed(format!("LISTEN_FDS={count} is not a number")))?;
    match count {
        0 => return Ok(None),
        1 => {}
        n => return Err(ActivationError::SeveralSockets(n)),
    }
    if std::fs::symlink_metadata(format!("/proc/self/fd/{FIRST_FD}")).is_err() {
        return Err(ActivationError::Malformed(format!(
            "LISTEN_FDS=1 but descriptor {FIRST_FD} is not open"
        )));
    }
    let fd = take_passed_fd();
    let path = match check_kind(&fd) {
        Ok(path) => path,
        Err(err) => {
            // Not what the protocol promised: leave the descriptor as it was found.
            std::mem::forget(fd);
            return Err(err);
        }
    };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| ActivationError::Io("set close-on-exec on the socket", e.into()))?;
    let listener = UnixListener::from(fd);
    check_place(&path)?;
    if let Some(given) = socket_flag {
        let given = std::path::absolute(given).unwrap_or_else(|_| given.to_owned());
        if given != path {
            return Err(ActivationError::OtherSocket {
                given,
                passed: path,
            });
        }
    }
    Ok(Some((listener, path)))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Takes ownership of descriptor 3, which `LISTEN_FDS=1` with our pid in `LISTEN_PID` says
/// the service manager passed to this process.
#[allow(unsafe_code)]
fn take_passed_fd() -> OwnedFd {
    // SAFETY: by the socket activation protocol, checked by the caller (LISTEN_PID is this
    // process, LISTEN_FDS is 1), descriptor 3 is open and belongs to this process alone, and
    // nothing else in the hub uses it; it is taken once, at start-up, before anything else
    // opens a descriptor that could take its number.
    unsafe { OwnedFd::from_raw_fd(FIRST_FD) }
}

/// A listening Unix stream socket bound to a path: its path.
fn check_kind(fd: &OwnedFd) -> Result<PathBuf, ActivationError> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let stat = rustix::fs::fstat(fd).map_err(|e| ActivationError::Io("inspect", e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(ActivationError::WrongKind(
            "a descriptor that is no socket".into(),
        ));
    }
    let domain = sockopt::socket_domain(fd.as_fd())
        .map_err(|e| ActivationError::Io("read the socket's family", e.into()))?;
    if domain != AddressFamily::UNIX {
        return Err(ActivationError::WrongKind(format!(
            "a socket of family {}",
            domain.as_raw()
        )));
    }
    let kind = sockopt::socket_type(fd.as_fd())
        .map_err(|e| ActivationError::Io("read the socket's type", e.into()))?;
    if kind != SocketType::STREAM {
        let name = match kind {
            SocketType::DGRAM => "a datagram socket".to_owned(),
            SocketType::SEQPACKET => "a seqpacket socket".to_owned(),
            other => format!("a socket of type {}", other.as_raw()),
        };
        return Err(ActivationError::WrongKind(name));
    }
    if !sockopt::socket_acceptconn(fd.as_fd())
        .map_err(|e| ActivationError::Io("read whether the socket listens", e.into()))?
    {
        return Err(ActivationError::WrongKind(
            "a stream socket that is not listening (an accepted connection?)".into(),
        ));
    }
    let address = rustix::net::getsockname(fd.as_fd())
        .map_err(|e| ActivationError::Io("read the socket's address", e.into()))?;
    let unix = rustix::net::SocketAddrUnix::try_from(address)
        .map_err(|e| ActivationError::Io("read the socket's path", e.into()))?;
    match unix.path() {
        Some(path) => {
            use std::os::unix::ffi::OsStrExt;
            Ok(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
        }
        None => Err(ActivationError::WrongKind(
            "an abstract or unnamed Unix socket".into(),
        )),
    }
}

/// The same rules as the hub's own socket: a private directory, a socket file only its owner,
/// this user, can reach.
fn check_place(path: &Path) -> Result<(), ActivationError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    private_dir::check(dir)?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| ActivationError::Io("inspect the socket file", e))?;
    let me = rustix::process::geteuid().as_raw();
    let mode = meta.permissions().mode() & 0o7777;
    let why = if !meta.file_type().is_socket() {
        Some("not a socket on disk any more".to_owned())
    } else if meta.uid() != me {
        Some(format!(
            "owned by uid {}, not by the hub's user (uid {me})",
            meta.uid()
        ))
    } else if mode & 0o077 != 0 {
        Some(format!("open to group or others (mode {mode:04o})"))
    } else {
        None
    };
    match why {
        Some(why) => Err(ActivationError::TooOpen {
            path: path.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Tells the service manager how the hub is doing (`READY=1`, `STOPPING=1`...), when it asked
/// to be told (`NOTIFY_SOCKET`); a failure is logged, never fatal.
pub(crate) fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
        return;
    };
    if let Err(err) = send(&target, state) {
        tracing::warn!(%err, socket = ?target, "cannot notify the service manager");
    }
}

fn send(target: &std::ffi::OsStr, state: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(Path::new(target))?,
    };
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reaches_a_notify_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1\nSTATUS=serving").expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
    }

    #[test]
    fn a_socket_open_to_others_or_in_an_open_directory_is_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let path = dir.join("hub.sock");
        let _listener = UnixListener::bind(&path).expect("bind");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        check_place(&path).expect("0600 in 0700 is fine");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = check_place(&path).expect_err("0666");
        assert!(err.to_string().contains("SocketMode=0600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = check_place(&path).expect_err("0755 directory");
        assert!(err.to_string().contains("DirectoryMode=0700"), "{err}");
    }
}
