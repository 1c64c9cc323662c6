//! The gRPC services: thin adapters from requests to [`Hub`](crate::state::Hub) operations.

mod control;
mod execution;
mod registration;

pub use control::ControlService;
pub use execution::ExecutionService;
pub use registration::RegistrationService;

use crate::state::task::Submitter;
use tonic::transport::server::UdsConnectInfo;

/// The caller's uid and pid, from the socket's peer credentials.
fn submitter<T>(request: &tonic::Request<T>) -> Submitter {
    request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| Submitter {
            uid: cred.uid(),
            pid: cred.pid().unwrap_or(0).max(0) as u32,
        })
        .unwrap_or_default()
}
