//! Checks every call's HMAC signature before any of it runs.
//!
//! This is a tower layer, not a tonic interceptor, because the signature covers the gRPC method
//! path and interceptors can't see it. A refused call is answered at once with a status; its
//! request body (for a stream, every message) is never read.

use futures_util::future::{Either, Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tower::{Layer, Service};
use warren_proto::auth::{HEADER, HUB_TIME_HEADER, Refusal, Verifier};

/// Services that answer without a signature: they reveal nothing and change nothing.
const UNSIGNED_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Wraps the hub's routes in signature checking.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
}

impl AuthLayer {
    /// A layer that checks calls with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// A service that runs only calls whose signature passes.
#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authenticated<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path();
        if UNSIGNED_PREFIXES.iter().any(|p| method.starts_with(p)) {
            return Either::Left(self.inner.call(request));
        }
        let header = request.headers().get(HEADER).map(|v| v.as_bytes());
        match self.verifier.verify(method, header) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => {
                tracing::warn!(method, %refusal, "refused a call");
                Either::Right(ready(Ok(refusal_status(&refusal).into_http())))
            }
        }
    }
}

/// The status a refused call gets: UNAUTHENTICATED, or RESOURCE_EXHAUSTED when the replay
/// cache is full; stale and future refusals carry the hub's clock in `warren-hub-time`.
pub fn refusal_status(refusal: &Refusal) -> Status {
    let code = match refusal {
        Refusal::ReplayCacheFull { .. } => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Unauthenticated,
    };
    let mut status = Status::new(code, refusal.to_string());
    if let Some(Ok(value)) = refusal.hub_time().map(|t| t.to_string().parse()) {
        status.metadata_mut().insert(HUB_TIME_HEADER, value);
    }
    status
}
