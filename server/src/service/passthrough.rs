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

/// `warren.v1.Execution`, its event streams passing output bytes through.
#[derive(Debug, Clone)]
pub(crate) struct PassthroughExecution {
    generated: ExecutionServer<ExecutionService>,
    service: Arc<ExecutionService>,
    max_message: usize,
}

impl PassthroughExecution {
    /// The service, decoding requests up to `max_message` bytes as the generated one does.
    pub(crate) fn new(service: ExecutionService, max_message: usize) -> Self {
        Self {
            generated: ExecutionServer::new(service.clone()).max_decoding_message_size(max_message),
            service: Arc::new(service),
            max_message,
        }
    }
}

impl NamedService for PassthroughExecution {
    const NAME: &'static str = <ExecutionServer<ExecutionService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for PassthroughExecution {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        let service = self.service.clone();
        let max = self.max_message;
        match request.uri().path() {
            "/warren.v1.Execution/Execute" => Box::pin(async move {
                let answer = match unary(request, max).await {
                    Ok(request) => service.execute(request).await,
                    Err(status) => Err(status),
                };
                Ok(respond(answer))
            }),
            "/warren.v1.Execution/StreamOutput" => Box::pin(async move {
                let answer = match unary(request, max).await {
                    Ok(request) => service.stream_output(request).await,
                    Err(status) => Err(status),
                };
                Ok(respond(answer))
            }),
            "/warren.v1.Execution/Interact" => {
                Box::pin(
                    async move { Ok(respond(service.interact_from(received(request, max)).await)) },
                )
            }
            _ => self.generated.call(request),
        }
    }
}

/// `warren.v1.Registration`, its engine streams passing stdin bytes through.
#[derive(Debug, Clone)]
pub(crate) struct PassthroughRegistration {
    generated: RegistrationServer<RegistrationService>,
    service: Arc<RegistrationService>,
    max_message: usize,
}

impl PassthroughRegistration {
    /// The service, decoding engines' messages up to `max_message` bytes as the generated one
    /// does.
    pub(crate) fn new(service: RegistrationService, max_message: usize) -> Self {
        Self {
            generated: RegistrationServer::new(service.clone())
                .max_decoding_message_size(max_message),
            service: Arc::new(service),
            max_message,
        }
    }
}

impl NamedService for PassthroughRegistration {
    const NAME: &'static str = <RegistrationServer<RegistrationService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for PassthroughRegistration {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        let service = self.service.clone();
        let max = self.max_message;
        match request.uri().path() {
            "/warren.v1.Registration/Register" => Box::pin(async move {
                let inbound = received(request, max).into_inner();
                Ok(respond(service.register_from(inbound).await))
            }),
            _ => self.generated.call(request),
        }
    }
}

/// `warren.v1.Files`, its uploads read where their bytes lie.
#[derive(Debug, Clone)]
pub(crate) struct PassthroughFiles {
    generated: FilesServer<FilesService>,
    service: Arc<FilesService>,
    max_message: usize,
}

impl PassthroughFiles {
    /// The service, decoding requests up to `max_message` bytes as the generated one does.
    pub(crate) fn new(service: FilesService, max_message: usize) -> Self {
        Self {
            generated: FilesServer::new(service.clone()).max_decoding_message_size(max_message),
            service: Arc::new(service),
            max_message,
        }
    }
}

impl NamedService for PassthroughFiles {
    const NAME: &'static str = <FilesServer<FilesService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for PassthroughFiles {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        let service = self.service.clone();
        let max = self.max_message;
        match request.uri().path() {
            "/warren.v1.Files/Upload" => Box::pin(async move {
                let inbound = received(request, max).into_inner();
                let answer = service.upload_from(inbound).await;
                let answer = answer.map(|reply| {
                    reply.map(|message| stream::iter([Ok::<_, Status>(Whole(message))]))
                });
                Ok(respond(answer))
            }),
            _ => self.generated.call(request),
        }
    }
}
