//! [`call_streaming`] and [`call_server_streaming`]: a client's streaming calls whose
//! requests go through [`PassthroughBody`] and whose answers are [`Received`].

use futures_core::Stream;
use prost::Message;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;

use super::{Passthrough, PassthroughBody, Received, Whole};

/// Calls the streaming method at `path` (for example `/warren.v1.Registration/Register`) over
/// `channel`, sending `messages` through [`PassthroughBody`], and answers with the response
/// stream, with tonic's generated clients' errors, up to `max_message` bytes a message.
pub async fn call_streaming<C, S, M, R>(
    channel: &mut C,
    path: &'static str,
    messages: S,
    max_message: usize,
) -> Result<tonic::Response<Received<R>>, Status>
where
    C: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S: Stream<Item = M> + Send + Unpin + 'static,
    M: Passthrough + Send + 'static,
    R: Message + Default + Send + 'static,
{
    use tower::ServiceExt as _;
    let mut request = http::Request::new(tonic::body::Body::new(PassthroughBody::request(AllOk(
        messages,
    ))));
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::from_static(path);
    let headers = request.headers_mut();
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    let channel = channel
        .ready()
        .await
        .map_err(|err| Status::from_error(err.into()))?;
    let response = channel
        .call(request)
        .await
        .map_err(|err| Status::from_error(err.into()))?;
    // As tonic's client does: a status in the headers is a call that ended before answering.
    if let Some(status) = Status::from_header_map(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let status_code = response.status();
    let (parts, body) = response.into_parts();
    let messages = Received::response(body, status_code, max_message);
    Ok(tonic::Response::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers),
        messages,
        parts.extensions,
    ))
}

/// Calls the server-streaming method at `path` with its one `request`, as
/// [`call_streaming`] does.
pub async fn call_server_streaming<C, M, R>(
    channel: &mut C,
    path: &'static str,
    request: M,
    max_message: usize,
) -> Result<tonic::Response<Received<R>>, Status>
where
    C: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    M: Message + Send + 'static,
    R: Message + Default + Send + 'static,
{
    call_streaming(channel, path, One(Some(Whole(request))), max_message).await
}

/// A stream of one message.
struct One<M>(Option<M>);

impl<M> Unpin for One<M> {}

impl<M> Stream for One<M> {
    type Item = M;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<M>> {
        Poll::Ready(self.0.take())
    }
}

/// A client's request stream, whose messages never fail.
struct AllOk<S>(S);

impl<S: Stream + Unpin> Stream for AllOk<S> {
    type Item = Result<S::Item, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx).map(|item| item.map(Ok))
    }
}
