//! What can go wrong copying, in words that say what to do, each with the gRPC code a caller
//! can act on.

use std::io;
use std::path::Path;
use tonic::Code;

/// The sort of failure, which decides the gRPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A path does not exist (NOT_FOUND).
    NotFound,
    /// The user the copy runs as may not read or write a path (PERMISSION_DENIED).
    PermissionDenied,
    /// A directory where a file was wanted, or without -r (FAILED_PRECONDITION).
    IsADirectory,
    /// A file where a directory was wanted (FAILED_PRECONDITION).
    NotADirectory,
    /// Something else is in the way, or the filesystem is read-only (FAILED_PRECONDITION).
    InTheWay,
    /// The disk or the user's quota is full (RESOURCE_EXHAUSTED).
    NoSpace,
    /// The bytes written are not the bytes sent (DATA_LOSS).
    Mismatch,
    /// The copy stream is malformed (INVALID_ARGUMENT).
    Invalid,
    /// Any other failure of the filesystem (INTERNAL).
    Io,
}

impl ErrorKind {
    /// The gRPC code for this kind of failure.
    pub fn code(self) -> Code {
        match self {
            Self::NotFound => Code::NotFound,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::IsADirectory | Self::NotADirectory | Self::InTheWay => Code::FailedPrecondition,
            Self::NoSpace => Code::ResourceExhausted,
            Self::Mismatch => Code::DataLoss,
            Self::Invalid => Code::InvalidArgument,
            Self::Io => Code::Internal,
        }
    }
}

/// A copy failed: what went wrong, where, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CopyError {
    kind: ErrorKind,
    message: String,
}

impl CopyError {
    /// An error of this kind with this message (which says what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A malformed stream.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// The sort of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The gRPC code a caller can act on.
    pub fn code(&self) -> Code {
        self.kind.code()
    }

    /// What went wrong and what to do.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A filesystem error met while doing `action` ("read", "create", ...) to `path`, sorted
    /// by what the user can do about it.
    pub fn io(action: &str, path: &Path, err: &io::Error) -> Self {
        let path = path.display();
        let errno = err.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
        use rustix::io::Errno;
        let (kind, advice) = match (err.kind(), errno) {
            (_, Some(Errno::NOSPC | Errno::DQUOT)) | (io::ErrorKind::StorageFull, _) => (
                ErrorKind::NoSpace,
                "no space left on the device (or the user's quota is used up); free some space \
                 or copy to another filesystem"
                    .to_owned(),
            ),
            (_, Some(Errno::ROFS)) => (
                ErrorKind::InTheWay,
                "the filesystem is read-only; copy somewhere writable".to_owned(),
            ),
            (io::ErrorKind::NotFound, _) => (
                ErrorKind::NotFound,
                "no such file or directory; check the path (and that its directory exists)"
                    .to_owned(),
            ),
            (io::ErrorKind::PermissionDenied, _) => (
                ErrorKind::PermissionDenied,
                format!(
                    "permission denied to uid {}, the user the copy runs as; pick a path that \
                     user may use, or change the permissions",
                    rustix::process::geteuid().as_raw()
                ),
            ),
            (_, Some(Errno::ISDIR)) => (
                ErrorKind::IsADirectory,
                "it is a directory; give a path inside it, or move it out of the way".to_owned(),
            ),
            (_, Some(Errno::NOTDIR)) => (
                ErrorKind::NotADirectory,
                "a part of the path is not a directory; check the path".to_owned(),
            ),
            (_, Some(Errno::NOTEMPTY | Errno::EXIST)) => (
                ErrorKind::InTheWay,
                "something is in the way; move it first".to_owned(),
            ),
            (_, Some(Errno::NAMETOOLONG)) => (
                ErrorKind::Invalid,
                "the name is too long for the filesystem; choose a shorter one".to_owned(),
            ),
            _ => (ErrorKind::Io, err.to_string()),
        };
        Self::new(kind, format!("cannot {action} {path}: {advice}"))
    }
}

/// A copy result.
pub type Result<T, E = CopyError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(errno: i32) -> CopyError {
        CopyError::io(
            "write",
            Path::new("/x"),
            &io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn filesystem_errors_get_the_code_a_caller_can_act_on_and_advice() {
        use rustix::io::Errno;
        let cases = [
            (Errno::NOSPC, Code::ResourceExhausted, "free some space"),
            (Errno::DQUOT, Code::ResourceExhausted, "quota"),
            (Errno::NOENT, Code::NotFound, "check the path"),
            (
                Errno::ACCESS,
                Code::PermissionDenied,
                "the user the copy runs as",
            ),
            (
                Errno::PERM,
                Code::PermissionDenied,
                "change the permissions",
            ),
            (Errno::ISDIR, Code::FailedPrecondition, "is a directory"),
            (Errno::NOTDIR, Code::FailedPrecondition, "not a directory"),
            (Errno::ROFS, Code::FailedPrecondition, "read-only"),
            (Errno::IO, Code::Internal, "/x"),
        ];
        for (errno, code, advice) in cases {
            let err = sorted(errno.raw_os_error());
            assert_eq!(err.code(), code, "{errno:?}: {err}");
            assert!(err.message().contains(advice), "{errno:?}: {err}");
            assert!(err.message().starts_with("cannot write /x: "), "{err}");
        }
    }
}
