//! The one place a [`HubError`] becomes a gRPC status: the code each error gets is decided
//! here, and its message says what went wrong and what to do.

use tonic::{Code, Status};

use crate::error::HubError;
use crate::store::QueryError;

impl From<HubError> for Status {
    fn from(err: HubError) -> Self {
        Status::new(code(&err), err.to_string())
    }
}

/// The code a caller sees for an error.
fn code(err: &HubError) -> Code {
    match err {
        HubError::Invalid(_) => Code::InvalidArgument,
        HubError::Exhausted(_) => Code::ResourceExhausted,
        HubError::Precondition(_) | HubError::NoFiles(_) => Code::FailedPrecondition,
        HubError::Copy { code, .. } => *code,
        HubError::UnknownTask { .. }
        | HubError::UnknownEngine(_)
        | HubError::UnknownSession { .. }
        | HubError::NoSuchGroup(_)
        | HubError::NoEngineWithLabels(_) => Code::NotFound,
        HubError::PastTheEnd { .. } => Code::OutOfRange,
        HubError::Stopping | HubError::StoppedFollowing { .. } => Code::Unavailable,
        HubError::NoHello(_) => Code::DeadlineExceeded,
        HubError::ClosedBeforeHello => Code::Cancelled,
        HubError::Store(QueryError::Failed(_)) => Code::Internal,
        HubError::Store(QueryError::Stopped) => Code::Unavailable,
        // A batch's refusal is its request's.
        HubError::InBatch { source, .. } => code(source),
    }
}
