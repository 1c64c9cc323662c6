//! [`Received`]: a stream of gRPC messages decoded from HTTP/2 frames where they lie.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use http_body::Body as _;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use sync_wrapper::SyncWrapper;
use tonic::body::Body;
use tonic::{Code, Status};

use super::PREFIX;

/// The messages of a gRPC stream, read from its HTTP/2 body as tonic's `Streaming` reads them,
/// with the same errors, but without first copying every frame into one buffer: a message's
/// bytes field that lies within one frame (as [`super::PassthroughBody`] sends it, and as a
/// frame holds it when frames are as large as [`crate::transport::MAX_FRAME`]) is a slice of
/// that frame.
pub struct Received<M> {
    /// Only ever reached through `&mut`, so the stream is `Sync` as tonic's is.
    body: SyncWrapper<Body>,
    frames: Pieces,
    /// The length of the message whose prefix has been read.
    next: Option<usize>,
    max_message: usize,
    /// A server's answer (with the HTTP status it came with) ends with its status in trailers;
    /// a client's request just ends.
    answer: Option<StatusCode>,
    trailers: Option<HeaderMap>,
    ended: bool,
    message: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Received<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("buffered", &self.frames.remaining())
            .field("ended", &self.ended)
            .finish()
    }
}

impl<M: prost::Message + Default> Received<M> {
    /// A client's request stream, as a server reads it.
    pub fn request(body: Body, max_message: usize) -> Self {
        Self {
            body: SyncWrapper::new(body),
            frames: Pieces::default(),
            next: None,
            max_message,
            answer: None,
            trailers: None,
            ended: false,
            message: PhantomData,
        }
    }

    /// A server's answer that came with HTTP status `status`, as a client reads it.
    pub fn response(body: Body, status: StatusCode, max_message: usize) -> Self {
        Self {
            answer: Some(status),
            ..Self::request(body, max_message)
        }
    }

    /// The next message; none once the stream has ended well.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// The next whole message among the frames received, if they hold one.
    fn decode_next(&mut self) -> Result<Option<M>, Status> {
        let len = match self.next {
            Some(len) => len,
            None if self.frames.remaining() < PREFIX => return Ok(None),
            None => {
                let compressed = self.frames.get_u8();
                let len = self.frames.get_u32() as usize;
                if compressed != 0 {
                    // No compression is ever negotiated, as with the generated services.
                    return Err(Status::internal(format!(
                        "protocol error: received message with compressed-flag {compressed} \
                         but no grpc-encoding was specified"
                    )));
                }
                if len > self.max_message {
                    return Err(Status::out_of_range(format!(
                        "Error, decoded message length too large: found {len} bytes, the \
                         limit is: {} bytes",
                        self.max_message
                    )));
                }
                self.next = Some(len);
                len
            }
        };
        if self.frames.remaining() < len {
            return Ok(None);
        }
        self.next = None;
        // The message is the next `len` bytes: prost reads to the end of what it is given.
        let message = M::decode((&mut self.frames).take(len))
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(Some(message))
    }

    /// How the stream ended when its body did: an error where tonic would give one.
    fn end(&mut self) -> Option<Status> {
        if self.next.is_some() || self.frames.remaining() > 0 {
            return Some(Status::internal("Unexpected EOF decoding stream."));
        }
        let answer = self.answer?;
        match self.trailers.as_ref().and_then(Status::from_header_map) {
            Some(status) if status.code() == Code::Ok => None,
            Some(status) => Some(status),
            None => Some(missing_status(answer)),
        }
    }
}

/// The status of an answer whose trailers had none, mapped from its HTTP status as gRPC
/// clients do.
fn missing_status(status: StatusCode) -> Status {
    let code = match status {
        StatusCode::OK => {
            return Status::unknown(
                "protocol error: missing grpc-status trailer, stream was terminated without a \
                 final status",
            );
        }
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!(
            "grpc-status header missing, mapped from HTTP status code {}",
            status.as_u16()
        ),
    )
}

impl<M: prost::Message + Default> Stream for Received<M> {
    type Item = Result<M, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.decode_next() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => {}
                Err(status) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
            match ready!(Pin::new(this.body.get_mut()).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.frames.push(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers.get_or_insert_default().extend(trailers);
                        }
                        this.ended = true;
                        return Poll::Ready(this.end().map(Err));
                    }
                },
                // A client that cancels its request stream has just stopped sending.
                Some(Err(status)) if this.answer.is_none() && status.code() == Code::Cancelled => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Some(Err(status)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    this.ended = true;
                    return Poll::Ready(this.end().map(Err));
                }
            }
        }
    }
}

/// Bytes in pieces, read as one buffer; [`Buf::copy_to_bytes`] slices a piece when the bytes
/// asked for lie within it, which is how prost takes a `bytes` field.
#[derive(Default)]
struct Pieces {
    pieces: VecDeque<Bytes>,
    remaining: usize,
}

impl Pieces {
    fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.remaining += piece.len();
            self.pieces.push_back(piece);
        }
    }
}

impl Buf for Pieces {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.pieces.front().map_or(&[], |piece| piece)
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the pieces");
        while cnt > 0 {
            let Some(piece) = self.pieces.front_mut() else {
                break;
            };
            if piece.len() > cnt {
                piece.advance(cnt);
                self.remaining -= cnt;
                break;
            }
            cnt -= piece.len();
            self.remaining -= piece.len();
            self.pieces.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining, "copy past the end of the pieces");
        if let Some(piece) = self.pieces.front_mut()
            && piece.len() >= len
        {
            let slice = piece.split_to(len);
            if piece.is_empty() {
                self.pieces.pop_front();
            }
            self.remaining -= len;
            return slice;
        }
        // Bytes that span pieces are gathered, as tonic would have.
        let mut copy = BytesMut::with_capacity(len);
        copy.put(self.take(len));
        copy.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passthrough::Passthrough;
    use crate::v1::{OutputChunk, TaskEvent, task_event};
    use http_body::Frame;
    use prost::Message;

    fn bytes(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
    }

    fn event(seq: u64, len: usize) -> TaskEvent {
        TaskEvent {
            task_id: 5,
            seq,
            kind: Some(task_event::Kind::Output(OutputChunk {
                stream: 1,
                data: bytes(len),
            })),
            ..Default::default()
        }
    }

    /// A body of these frames, then these trailers.
    fn body(frames: Vec<Bytes>, trailers: Option<HeaderMap>) -> Body {
        let mut frames: VecDeque<_> = frames.into_iter().map(Frame::data).collect();
        frames.extend(trailers.map(Frame::trailers));
        Body::new(Frames(frames))
    }

    struct Frames(VecDeque<Frame<Bytes>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = Status;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn ok_trailers() -> HeaderMap {
        let mut trailers = HeaderMap::new();
        Status::ok("").add_header(&mut trailers).expect("a status");
        trailers
    }

    fn collect<M: prost::Message + Default>(mut received: Received<M>) -> Vec<Result<M, Status>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        for _ in 0..100 {
            match Pin::new(&mut received).poll_next(&mut cx) {
                Poll::Ready(Some(item)) => out.push(item),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        out
    }

    /// The gRPC frames of `events` as [`PassthroughBody`] sends them.
    fn sent(events: &[TaskEvent]) -> Vec<Bytes> {
        let mut frames = Vec::new();
        for event in events {
            let mut out = BytesMut::new();
            let passed = event.clone().encode_passing(&mut out);
            frames.push(out.freeze());
            frames.extend(passed);
        }
        frames
    }

    #[test]
    fn passed_bytes_arrive_as_slices_of_their_frame() {
        let events = vec![event(1, 100_000), event(2, 10), event(3, 1 << 20)];
        let frames = sent(&events);
        let big = frames[1].clone();
        let received = Received::<TaskEvent>::response(
            body(frames, Some(ok_trailers())),
            StatusCode::OK,
            4 << 20,
        );
        let got: Vec<TaskEvent> = collect(received)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("no error");
        assert!(got == events, "the same events");
        let Some(task_event::Kind::Output(chunk)) = &got[0].kind else {
            panic!("output")
        };
        assert_eq!(
            chunk.data.as_ptr(),
            big.as_ptr(),
            "the bytes were not copied"
        );
    }

    #[test]
    fn messages_cut_anywhere_decode_the_same() {
        let events = vec![event(1, 300), event(2, 20_000), event(3, 0)];
        let mut wire = Vec::new();
        for event in &events {
            wire.push(0);
            wire.extend_from_slice(&(event.encoded_len() as u32).to_be_bytes());
            wire.extend_from_slice(&event.encode_to_vec());
        }
        for cut in [1, 2, 5, 7, 4096, 9999] {
            let frames = wire.chunks(cut).map(Bytes::copy_from_slice).collect();
            let received = Received::<TaskEvent>::request(body(frames, None), 1 << 20);
            let got: Result<Vec<_>, _> = collect(received).into_iter().collect();
            assert!(got.expect("no error") == events, "cut every {cut} bytes");
        }
    }

    #[test]
    fn errors_are_tonics() {
        let one = sent(&[event(1, 10)]);

        // A message cut short.
        let short = one[0].slice(..one[0].len() - 1);
        let got = collect(Received::<TaskEvent>::request(
            body(vec![short], None),
            1024,
        ));
        let status = got[0].as_ref().expect_err("an error");
        assert_eq!(status.code(), Code::Internal);

        // Too large.
        let got = collect(Received::<TaskEvent>::request(body(one.clone(), None), 4));
        let status = got[0].as_ref().expect_err("an error");
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(got.len(), 1, "nothing after the error");

        // An answer whose trailers carry an error, after its messages.
        let mut trailers = HeaderMap::new();
        Status::not_found("no task 9")
            .add_header(&mut trailers)
            .expect("a status");
        let got = collect(Received::<TaskEvent>::response(
            body(one.clone(), Some(trailers)),
            StatusCode::OK,
            1024,
        ));
        assert!(got[0].is_ok());
        let status = got[1].as_ref().expect_err("the trailers' status");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no task 9");

        // An answer with no status at all.
        let got = collect(Received::<TaskEvent>::response(
            body(one, None),
            StatusCode::OK,
            1024,
        ));
        let status = got[1].as_ref().expect_err("no status");
        assert_eq!(status.code(), Code::Unknown);
    }
}
