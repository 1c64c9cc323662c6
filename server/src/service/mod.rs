//! The gRPC services: thin adapters from requests to [`Hub`](crate::state::Hub) operations,
//! and the only place the hub's errors become statuses ([`status`]).

mod control;
mod execution;
mod files;
mod interact;
mod passthrough;
mod registration;
mod sessions;
mod status;

pub(crate) use control::ControlService;
pub(crate) use execution::ExecutionService;
pub(crate) use files::FilesService;
pub(crate) use passthrough::Passing;
pub(crate) use registration::RegistrationService;
pub(crate) use sessions::SessionsService;

use futures_util::{Stream, StreamExt};
use tonic::Status;
use warren_proto::socket::PeerCred;
use warren_proto::v1::TaskEvent;

use crate::model::Submitter;
use crate::state::EventStream;

/// A caller's stream of messages: tonic's `Streaming`, or the `Received` that the services
/// carrying bulk bytes read them with (see [`passthrough`]).
pub(crate) trait Inbound<M>:
    Stream<Item = Result<M, Status>> + Unpin + Send + 'static
{
}

impl<M, S: Stream<Item = Result<M, Status>> + Unpin + Send + 'static> Inbound<M> for S {}

/// The next message of `inbound`; none once it has ended well.
async fn next_message<M>(inbound: &mut impl Inbound<M>) -> Result<Option<M>, Status> {
    inbound.next().await.transpose()
}

/// A stream of events as a service answers it.
pub(crate) type Events = futures_util::stream::BoxStream<'static, Result<TaskEvent, Status>>;

/// A follower's events, their errors as statuses.
fn events(stream: EventStream) -> Events {
    stream.map(|item| item.map_err(Status::from)).boxed()
}

/// The caller's uid and pid, from the socket's peer credentials.
fn submitter<T>(request: &tonic::Request<T>) -> Submitter {
    request
        .extensions()
        .get::<PeerCred>()
        .map(|peer| Submitter {
            uid: peer.uid,
            pid: peer.pid,
        })
        .unwrap_or_default()
}

/// Notes ids in the call's span (made for every call by the server), so the log of one task
/// or engine can be filtered out.
fn record_ids(field: &'static str, ids: &dyn std::fmt::Debug) {
    tracing::Span::current().record(field, tracing::field::debug(ids));
}
