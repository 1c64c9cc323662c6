//! The services whose answers carry bulk bytes, answered through [`PassthroughBody`]:
//! `warren.v1.Execution`'s three event streams (Execute, StreamOutput, Interact), whose output
//! bytes go from the engine's message to every follower's socket, and
//! `warren.v1.Registration.Register`, whose stdin bytes go from the client's message to the
//! engine's, without being copied on the way. Their other calls are the generated servers',
//! and requests are decoded by tonic as the generated servers decode them.

use futures_util::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;
use warren_proto::passthrough::{Passthrough, PassthroughBody};
use warren_proto::v1::execution_server::{Execution, ExecutionServer};
use warren_proto::v1::registration_server::{Registration, RegistrationServer};

use super::{ExecutionService, RegistrationService};

type BoxFuture = futures_util::future::BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

/// The request's one message, as tonic's server reads it.
async fn unary<M: prost::Message + Default + Send + 'static>(
    request: http::Request<Body>,
    max_message: usize,
) -> Result<Request<M>, Status> {
    let (parts, body) = request.into_parts();
    let mut messages = decode::<M>(body, max_message);
    let message = messages
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing request message."))?;
    Ok(Request::from_http(http::Request::from_parts(
        parts, message,
    )))
}

/// The request's stream of messages, as tonic's server reads it.
fn streaming<M: prost::Message + Default + Send + 'static>(
    request: http::Request<Body>,
    max_message: usize,
) -> Request<Streaming<M>> {
    let (parts, body) = request.into_parts();
    Request::from_http(http::Request::from_parts(parts, decode(body, max_message)))
}

fn decode<M: prost::Message + Default + Send + 'static>(
    body: Body,
    max_message: usize,
) -> Streaming<M> {
    // No compression: the generated servers accept none either.
    Streaming::new_request(ProstDecoder::<M>::default(), body, None, Some(max_message))
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
                    async move { Ok(respond(service.interact(streaming(request, max)).await)) },
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
            "/warren.v1.Registration/Register" => {
                Box::pin(
                    async move { Ok(respond(service.register(streaming(request, max)).await)) },
                )
            }
            _ => self.generated.call(request),
        }
    }
}
