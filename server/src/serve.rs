//! The gRPC server: the four warren services behind the signature check and the input
//! budget, plus health and reflection (v1 and v1alpha, which grpcurl 1.8 asks for). Every call
//! runs in a span named after its method, which the services fill with the task and engine
//! ids they handle.

use std::sync::Arc;
use tonic::transport::Server;
use warren_proto::auth::Verifier;
use warren_proto::socket::QuietStream;
use warren_proto::transport;
use warren_proto::v1::{control_server::ControlServer, sessions_server::SessionsServer};

use crate::service::{
    ControlService, ExecutionService, FilesService, Passing, RegistrationService, SessionsService,
};
use crate::state::Hub;
use crate::{auth, input, validate};

/// The largest message the hub decodes; its own checks (`validate`) refuse anything over
/// their limits with RESOURCE_EXHAUSTED well before this.
const MAX_MESSAGE: usize = 2 * validate::MAX_REQUEST;

/// The span each call runs in.
fn call_span(request: &http::Request<()>) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        method = %request.uri().path(),
        task = tracing::field::Empty,
        tasks = tracing::field::Empty,
        engine = tracing::field::Empty,
        engines = tracing::field::Empty,
    )
}

/// Builds the server; it serves `incoming` until `shutdown` resolves, then lets open calls end.
pub(crate) fn serve<I, F>(
    hub: Arc<Hub>,
    verifier: Arc<Verifier>,
    incoming: I,
    shutdown: F,
) -> Result<
    impl Future<Output = Result<(), tonic::transport::Error>>,
    tonic_reflection::server::Error,
>
where
    I: tokio_stream::Stream<Item = std::io::Result<QuietStream>> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warren_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warren_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    hub.background()
        .spawn(tracing::info_span!("health"), async move {
            for name in [
                "warren.v1.Execution",
                "warren.v1.Control",
                "warren.v1.Registration",
                "warren.v1.Sessions",
                "warren.v1.Files",
            ] {
                health_reporter
                    .set_service_status(name, tonic_health::ServingStatus::Serving)
                    .await;
            }
        });

    Ok(Server::builder()
        .initial_stream_window_size(transport::STREAM_WINDOW)
        .initial_connection_window_size(transport::CONNECTION_WINDOW)
        .max_frame_size(transport::MAX_FRAME)
        .trace_fn(call_span)
        .layer(auth::layer(verifier))
        .layer(input::layer(hub.input_budget().clone()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(Passing::new(
            ExecutionService::new(hub.clone()),
            MAX_MESSAGE,
        ))
        .add_service(
            ControlServer::new(ControlService::new(hub.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            SessionsServer::new(SessionsService::new(hub.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(Passing::new(
            FilesService::new(hub.clone()),
            validate::MAX_ENGINE_MESSAGE,
        ))
        .add_service(Passing::new(
            RegistrationService::new(hub),
            validate::MAX_ENGINE_MESSAGE,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown))
}
