//! What can go wrong calling a hub, in words that say what to do.

use std::path::PathBuf;
use warren_proto::auth::KeyError;
use warren_proto::connection::ConnectionError;
use warren_proto::locate::LocateError;

/// An SDK error.
///
/// ```no_run
/// # async fn f() {
/// match warren::Client::connect("/tmp/none.json").await {
///     Err(warren::Error::ConnectionFile { path, .. }) => eprintln!("no hub at {}", path.display()),
///     Err(other) => eprintln!("{other}"),
///     Ok(_) => {}
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection file could not be used.
    #[error("cannot use connection file {path}: {source}")]
    ConnectionFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ConnectionError,
    },
    /// The key file could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The settings do not name one hub (a tunnel's name with a connection file, say).
    #[error(transparent)]
    Locate(LocateError),
    /// Nothing answers on the socket.
    #[error(
        "no hub answers at {socket}: {reason}. Start one with `warren cluster start` (or `warren-hub`), or point --socket / --connection-file at a running hub"
    )]
    NoHub {
        /// The socket.
        socket: PathBuf,
        /// What the connection attempt said.
        reason: String,
    },
    /// The hub answered with an error, or the connection to it broke during the call. (The
    /// status is not also given as the error's source: its text would repeat the message.)
    #[error("{}", describe_status(.0))]
    Status(tonic::Status),
    /// An interactive call has ended (its tasks ended, or the hub went away): its stdin
    /// takes no more.
    #[error("the interactive call has ended; its tasks take no more stdin")]
    CallEnded,
    /// A local file could not be read or written, or a copy's paths cannot work; its
    /// [`code`](warren_files::CopyError::code) says which.
    #[error(transparent)]
    Copy(#[from] warren_files::CopyError),
    /// A follow stream carried nothing, not even a heartbeat, for too long.
    #[error(
        "no word from the hub for {0:?}, not even a heartbeat; it may be gone. Check it, then follow the task again with `warren attach`"
    )]
    Silent(std::time::Duration),
    /// A session could not be opened as asked (it failed to start, or the options selected
    /// more than one engine for `open_session`).
    #[error("{0}")]
    Session(String),
    /// A cell's events ended before its result (the hub went away while following it).
    #[error(
        "the events of cell (task {0}) ended before its result; follow it again with `warren attach {0}`"
    )]
    CellCut(u64),
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

impl Error {
    /// The gRPC status, if the hub answered with one.
    ///
    /// ```
    /// let err = warren::Error::from(tonic::Status::not_found("task 7"));
    /// assert_eq!(err.status().map(tonic::Status::code), Some(tonic::Code::NotFound));
    /// ```
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Self::Status(status) => Some(status),
            _ => None,
        }
    }
}

fn describe_status(status: &tonic::Status) -> String {
    // A status made here from a broken connection (hyper's error is its source), not an
    // answer from the hub.
    if let Some(cause) = std::error::Error::source(status) {
        return format!(
            "lost the connection to the hub: {}",
            innermost(cause).unwrap_or_else(|| status.message().to_owned())
        );
    }
    let code = match status.code() {
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::NotFound => "not found",
        tonic::Code::FailedPrecondition => "failed precondition",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::ResourceExhausted => "resource exhausted",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "deadline exceeded",
        tonic::Code::OutOfRange => "out of range",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::Internal => "internal error",
        _ => "error",
    };
    format!("the hub said ({code}): {}", status.message())
}

/// The last error of a chain, which says what actually happened (e.g. a broken pipe).
fn innermost(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    (!text.is_empty()).then_some(text)
}

/// An SDK result.
///
/// ```
/// fn nothing() -> warren::Result<()> {
///     Ok(())
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
