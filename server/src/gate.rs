//! A tower layer that answers some calls at once with a status and passes the rest on.
//!
//! A refused call's body (for a stream, every message) is never read, so a flood of refused
//! calls costs the hub neither memory nor the time to read them. The signature check
//! ([`auth`](crate::auth)) and the input budget ([`input`](crate::input)) are such gates.

use futures_util::future::{Either, Ready, ready};
use std::task::{Context, Poll};
use tonic::Status;
use tower::{Layer, Service};

/// What a gate checks before a call runs.
pub(crate) trait Check {
    /// The status to refuse the call with, or `None` to let it through. `method` is the gRPC
    /// method's path.
    fn refuse(&self, method: &str, headers: &http::HeaderMap) -> Option<Status>;
}

/// Puts a [`Gate`] with this check in front of a service.
#[derive(Clone, Debug)]
pub(crate) struct GateLayer<C> {
    check: C,
}

impl<C> GateLayer<C> {
    /// A layer that runs `check` on every call.
    pub(crate) fn new(check: C) -> Self {
        Self { check }
    }
}

impl<S, C: Clone> Layer<S> for GateLayer<C> {
    type Service = Gate<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            check: self.check.clone(),
        }
    }
}

/// A service that runs only the calls its check lets through.
#[derive(Clone, Debug)]
pub(crate) struct Gate<S, C> {
    inner: S,
    check: C,
}

impl<S, C, ReqBody, ResBody> Service<http::Request<ReqBody>> for Gate<S, C>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    C: Check,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        match self.check.refuse(request.uri().path(), request.headers()) {
            None => Either::Left(self.inner.call(request)),
            Some(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}
