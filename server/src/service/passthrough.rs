//! The calls that carry bulk bytes, served past tonic's copies: `warren.v1.Execution`'s three
//! event streams (Execute, StreamOutput, Interact), whose output bytes go from the engine's
//! message to every follower's socket, and `warren.v1.Registration.Register`, whose stdin
//! bytes go from the client's message to the engine's, are answered through
//! [`PassthroughBody`]; the streams that bring bulk bytes in (Register's output, Interact's
//! stdin, `warren.v1.Files.Upload`'s files) are read as [`Received`], their bytes left in the
//! frames they came in. The services' other calls are the generated servers'.

use futures_util::{Stream, stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tower::Service as _;
use warren_proto::passthrough::{Passthrough, PassthroughBody, Received, Whole};
use warren_proto::v1::execution_server::{Execution, ExecutionServer};
use warren_proto::v1::files_server::FilesServer;
use warren_proto::v1::registration_server::RegistrationServer;

use super::{ExecutionService, FilesService, RegistrationService};

type BoxFuture = futures_util::future::BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

/// The request's one message, with tonic's server's errors.
async fn unary<M: prost::Message + Default + Send + 'static>(
    request: http::Request<Body>,
    max_message: usize,
) -> Result<Request<M>, Status> {
    let (parts, body) = request.into_parts();
    let message = Received::<M>::request(body, max_message)
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing request message."))?;
    Ok(Request::from_http(http::Request::from_parts(
        parts, message,
    )))
}

/// The request's stream of messages, read where they lie.
fn received<M: prost::Message + Default + Send + 'static>(
    request: http::Request<Body>,
    max_message: usize,
) -> Request<Received<M>> {
    let (parts, body) = request.into_parts();
    Request::from_http(http::Request::from_parts(
        parts,
        Received::request(body, max_message),
    ))
}

/// The HTTP response for a call's answer: its messages through [`PassthroughBody`], or its
/// error as a status with no message, as tonic's server makes them.
fn respond<S, M>(answer: Result<Response<S>, Status>) -> http::Response<Body>
where
    S: Stream<Item = Result<M, Status>> + Unpin + Send + 'static,
    M: Passthrough + Send + 'static,
{
    match answer {
        Err(status) => status.into_http(),
        Ok(answer) => {
            let (metadata, messages, extensions) = answer.into_parts();
            let mut response = http::Response::new(Body::new(PassthroughBody::response(messages)));
            *response.headers_mut() = metadata.into_headers();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            *response.extensions_mut() = extensions;
            response
        }
    }
}

/// A service whose calls that carry bulk bytes are served here ([`Calls::serve`]) and whose
/// other calls go to its generated server.
#[derive(Debug, Clone)]
pub(crate) struct Passing<S: Calls> {
    generated: S::Generated,
    service: Arc<S>,
    max_message: usize,
}

/// What a service serves past tonic's copies.
pub(crate) trait Calls: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The generated server, for every other call.
    type Generated: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future = BoxFuture,
        > + NamedService
        + Clone
        + std::fmt::Debug;

    /// The generated server over this service, decoding up to `max_message` bytes.
    fn generated(self, max_message: usize) -> Self::Generated;

    /// Serves `request` if it is one of the calls served here, else hands it to `generated`.
    fn serve(
        service: Arc<Self>,
        request: http::Request<Body>,
        max_message: usize,
        generated: &mut Self::Generated,
    ) -> BoxFuture;
}

impl<S: Calls> Passing<S> {
    /// The service, decoding requests up to `max_message` bytes as the generated one does.
    pub(crate) fn new(service: S, max_message: usize) -> Self {
        Self {
            generated: service.clone().generated(max_message),
            service: Arc::new(service),
            max_message,
        }
    }
}

impl<S: Calls> NamedService for Passing<S> {
    const NAME: &'static str = <S::Generated as NamedService>::NAME;
}

impl<S: Calls> tower::Service<http::Request<Body>> for Passing<S> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generated servers are always ready too.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        S::serve(
            self.service.clone(),
            request,
            self.max_message,
            &mut self.generated,
        )
    }
}

/// `warren.v1.Execution`: its event streams pass output bytes through, and Interact's stdin is
/// read where it lies.
impl Calls for ExecutionService {
    type Generated = ExecutionServer<ExecutionService>;

    fn generated(self, max_message: usize) -> Self::Generated {
        ExecutionServer::new(self).max_decoding_message_size(max_message)
    }

    fn serve(
        service: Arc<Self>,
        request: http::Request<Body>,
        max: usize,
        generated: &mut Self::Generated,
    ) -> BoxFuture {
        match request.uri().path() {
            "/warren.v1.Execution/Execute" => Box::pin(async move {
                let answer = async { service.execute(unary(request, max).await?).await };
                Ok(respond(answer.await))
            }),
            "/warren.v1.Execution/StreamOutput" => Box::pin(async move {
                let answer = async { service.stream_output(unary(request, max).await?).await };
                Ok(respond(answer.await))
            }),
            "/warren.v1.Execution/Interact" => {
                Box::pin(
                    async move { Ok(respond(service.interact_from(received(request, max)).await)) },
                )
            }
            _ => generated.call(request),
        }
    }
}

/// `warren.v1.Registration`: an engine's output is read where it lies, and the stdin bytes
/// sent to it pass through.
impl Calls for RegistrationService {
    type Generated = RegistrationServer<RegistrationService>;

    fn generated(self, max_message: usize) -> Self::Generated {
        RegistrationServer::new(self).max_decoding_message_size(max_message)
    }

    fn serve(
        service: Arc<Self>,
        request: http::Request<Body>,
        max: usize,
        generated: &mut Self::Generated,
    ) -> BoxFuture {
        match request.uri().path() {
            "/warren.v1.Registration/Register" => Box::pin(async move {
                let inbound = received(request, max).into_inner();
                Ok(respond(service.register_from(inbound).await))
            }),
            _ => generated.call(request),
        }
    }
}

/// `warren.v1.Files`: an upload's files are read where their bytes lie.
impl Calls for FilesService {
    type Generated = FilesServer<FilesService>;

    fn generated(self, max_message: usize) -> Self::Generated {
        FilesServer::new(self).max_decoding_message_size(max_message)
    }

    fn serve(
        service: Arc<Self>,
        request: http::Request<Body>,
        max: usize,
        generated: &mut Self::Generated,
    ) -> BoxFuture {
        match request.uri().path() {
            "/warren.v1.Files/Upload" => Box::pin(async move {
                let inbound = received(request, max).into_inner();
                let answer = service.upload_from(inbound).await;
                let answer = answer.map(|reply| {
                    reply.map(|message| stream::iter([Ok::<_, Status>(Whole(message))]))
                });
                Ok(respond(answer))
            }),
            _ => generated.call(request),
        }
    }
}
