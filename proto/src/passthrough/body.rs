//! [`PassthroughBody`]: a stream of messages as HTTP/2 frames, their large bytes as frames of
//! their own.

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::HeaderMap;
use http_body::Frame;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;

use super::Passthrough;

/// Small messages ready at once are gathered into one frame up to about this many bytes, as
/// tonic's encoder does.
const GATHER: usize = 32 << 10;

/// The HTTP/2 body of a gRPC response stream (or a request stream) of [`Passthrough`]
/// messages: their frames, then, answering a call, the trailers with the stream's status.
pub struct PassthroughBody<S> {
    messages: S,
    ready: VecDeque<Frame<Bytes>>,
    /// Whether the stream ends with trailers (a server's answer) or with its last message
    /// (a client's request).
    trailers: bool,
    ended: bool,
}

impl<S> PassthroughBody<S> {
    /// The body of a server's answer: the messages, then the status in trailers.
    pub fn response(messages: S) -> Self {
        Self {
            messages,
            ready: VecDeque::new(),
            trailers: true,
            ended: false,
        }
    }

    /// The body of a client's request stream: the messages, then its end.
    pub fn request(messages: S) -> Self {
        Self {
            trailers: false,
            ..Self::response(messages)
        }
    }

    /// Queues the end of the stream, with `status` (none: OK) in trailers when it answers a
    /// call.
    fn end(&mut self, status: Option<Status>) -> Result<(), Status> {
        self.ended = true;
        if !self.trailers {
            return status.map_or(Ok(()), Err);
        }
        let mut trailers = HeaderMap::new();
        status
            .unwrap_or_else(|| Status::ok(""))
            .add_header(&mut trailers)?;
        self.ready.push_back(Frame::trailers(trailers));
        Ok(())
    }
}

impl<S, M> http_body::Body for PassthroughBody<S>
where
    S: Stream<Item = Result<M, Status>> + Unpin,
    M: Passthrough,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Some(frame) = this.ready.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let mut gathered = BytesMut::new();
        let mut passed = None;
        let mut ending = Ok(());
        while passed.is_none() && gathered.len() < GATHER {
            match Pin::new(&mut this.messages).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => passed = message.encode_passing(&mut gathered),
                Poll::Ready(Some(Err(status))) => {
                    ending = this.end(Some(status));
                    break;
                }
                Poll::Ready(None) => {
                    ending = this.end(None);
                    break;
                }
                Poll::Pending if gathered.is_empty() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        // The frames go out in order: what was gathered, the bytes passed, then the end.
        let mut frames = Vec::with_capacity(2);
        if !gathered.is_empty() {
            frames.push(Frame::data(gathered.freeze()));
        }
        frames.extend(passed.map(Frame::data));
        for frame in frames.into_iter().rev() {
            this.ready.push_front(frame);
        }
        if let Err(status) = ending {
            this.ready.clear();
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(this.ready.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passthrough::PASS_MIN;
    use crate::v1::{OutputChunk, TaskEvent, task_event};
    use http_body::Body;

    fn bytes(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
    }

    fn poll(
        body: &mut PassthroughBody<impl Stream<Item = Result<TaskEvent, Status>> + Unpin>,
    ) -> Vec<Frame<Bytes>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut frames = Vec::new();
        for _ in 0..100 {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => frames.push(frame),
                Poll::Ready(Some(Err(status))) => panic!("error: {status}"),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        frames
    }

    fn output(len: usize) -> Result<TaskEvent, Status> {
        Ok(TaskEvent {
            kind: Some(task_event::Kind::Output(OutputChunk {
                stream: 1,
                data: bytes(len),
            })),
            ..Default::default()
        })
    }

    #[test]
    fn a_response_gathers_small_messages_passes_large_ones_and_ends_with_its_status() {
        let big = bytes(PASS_MIN);
        let events = vec![output(10), output(20), output(PASS_MIN), output(5)];
        let mut body = PassthroughBody::response(vec_stream::iter(events));
        let frames = poll(&mut body);
        assert_eq!(
            frames.len(),
            4,
            "gathered + passed, the last small one, trailers"
        );
        let passed = frames[1].data_ref().expect("data");
        assert_eq!(passed, &big, "the large bytes are a frame of their own");
        let trailers = frames[3].trailers_ref().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert!(body.is_end_stream());
    }

    #[test]
    fn an_error_in_a_response_becomes_its_trailers_and_a_request_stream_just_ends() {
        let events = vec![output(10), Err(Status::not_found("no task 9"))];
        let mut body = PassthroughBody::response(vec_stream::iter(events));
        let frames = poll(&mut body);
        let trailers = frames
            .last()
            .and_then(|f| f.trailers_ref())
            .expect("trailers");
        let status = Status::from_header_map(trailers).expect("a status");
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no task 9");

        let mut request = PassthroughBody::request(vec_stream::iter(vec![output(10)]));
        let frames = poll(&mut request);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].is_data());
        assert!(request.is_end_stream());
    }

    /// A stream over a vector, without a dependency for it.
    mod vec_stream {
        use super::*;

        pub(super) struct Iter<T>(std::vec::IntoIter<T>);

        pub(super) fn iter<T>(items: Vec<T>) -> Iter<T> {
            Iter(items.into_iter())
        }

        impl<T> Stream for Iter<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
                Poll::Ready(self.0.next())
            }
        }

        impl<T> Unpin for Iter<T> {}
    }
}
