//! gRPC message streams whose large byte fields reach HTTP/2 as they are.
//!
//! tonic's encoder copies every message into its own buffer before HTTP/2 sends it: for a
//! task's output that is one more copy of every byte in each process the bytes pass through,
//! and one more per follower in the hub. [`PassthroughBody`] frames the rest of a message
//! itself and hands its bytes field to HTTP/2 as a frame of its own, which h2 writes from
//! where it lies (`writev`), shared by every stream that carries it. On the wire it is the same
//! gRPC message, in prost's field order or with the bytes field moved last, which any protobuf
//! decoder reads the same: no receiver can tell.
//!
//! [`call_streaming`] makes a client's streaming call with such a body, and [`Received`]
//! reads such a stream (or any gRPC stream) with its bytes fields sliced from the frames they
//! came in rather than copied out of them.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

mod body;
mod call;
mod received;

pub use body::PassthroughBody;
pub use call::{call_server_streaming, call_streaming};
pub use received::Received;

use crate::v1::{
    EngineMessage, HubMessage, InteractRequest, TaskEvent, engine_message, hub_message,
    interact_request, task_event,
};

/// Byte fields shorter than this are copied with the rest of their message: a frame of their
/// own would cost more than the copy.
pub const PASS_MIN: usize = 8 << 10;

/// The gRPC frame header: a compression flag (never set here) and the message's length.
pub(crate) const PREFIX: usize = 5;

/// A message with one `bytes` field, one message deep, that may pass as it is.
pub trait Passthrough: Sized {
    /// Appends the message, framed for gRPC, to `out`. When its bytes field is large, it is
    /// left out of `out` (which then ends with the field's key and length) and returned, to
    /// be sent right after.
    fn encode_passing(self, out: &mut BytesMut) -> Option<Bytes>;
}

/// A message sent whole, its bytes copied with the rest: for a call's one request or answer.
#[derive(Debug, Clone)]
pub struct Whole<M>(pub M);

impl<M: Message> Passthrough for Whole<M> {
    fn encode_passing(self, out: &mut BytesMut) -> Option<Bytes> {
        encode_whole(&self.0, out);
        None
    }
}

/// Appends `message`, framed for gRPC, to `out`.
fn encode_whole(message: &impl Message, out: &mut BytesMut) {
    let len = message.encoded_len();
    out.reserve(PREFIX + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    put(message, out);
}

/// Appends `message`'s encoding to `out`.
fn put(message: &impl Message, out: &mut BytesMut) {
    // prost's one error is a buffer too small, and a BytesMut grows as it is written.
    let _ = message.encode(out);
}

/// Appends `outer` with field `outer_tag` set to `inner`, whose field `data_tag` holds `data`,
/// framed for gRPC, all but `data` itself; both messages come without those fields. Fields
/// keep prost's order when the two tags are their message's last (a test checks that they
/// do); any other order would decode the same.
fn encode_nested(
    outer: &impl Message,
    outer_tag: u32,
    inner: &impl Message,
    data_tag: u32,
    data: Bytes,
    out: &mut BytesMut,
) -> Bytes {
    let data_len = data.len();
    let inner_len =
        inner.encoded_len() + key_len(data_tag) + encoded_len_varint(data_len as u64) + data_len;
    let outer_len =
        outer.encoded_len() + key_len(outer_tag) + encoded_len_varint(inner_len as u64) + inner_len;
    out.reserve(PREFIX + outer_len - data_len);
    out.put_u8(0);
    out.put_u32(outer_len as u32);
    put(outer, out);
    encode_key(outer_tag, WireType::LengthDelimited, out);
    encode_varint(inner_len as u64, out);
    put(inner, out);
    encode_key(data_tag, WireType::LengthDelimited, out);
    encode_varint(data_len as u64, out);
    data
}

/// Appends `message` with field `data_tag` set to `data`, framed for gRPC, all but `data`
/// itself; the message comes without the field.
fn encode_flat(message: &impl Message, data_tag: u32, data: Bytes, out: &mut BytesMut) -> Bytes {
    let data_len = data.len();
    let len =
        message.encoded_len() + key_len(data_tag) + encoded_len_varint(data_len as u64) + data_len;
    out.reserve(PREFIX + len - data_len);
    out.put_u8(0);
    out.put_u32(len as u32);
    put(message, out);
    encode_key(data_tag, WireType::LengthDelimited, out);
    encode_varint(data_len as u64, out);
    data
}

// Field numbers from task.proto, registration.proto and interact.proto.
const TASK_EVENT_OUTPUT: u32 = 6;
const OUTPUT_CHUNK_DATA: u32 = 2;
const ENGINE_MESSAGE_OUTPUT: u32 = 3;
const TASK_OUTPUT_DATA: u32 = 3;
const HUB_MESSAGE_STDIN_DATA: u32 = 10;
const STDIN_DATA_DATA: u32 = 4;
const INTERACT_REQUEST_STDIN: u32 = 2;

impl Passthrough for TaskEvent {
    fn encode_passing(mut self, out: &mut BytesMut) -> Option<Bytes> {
        match self.kind.take() {
            Some(task_event::Kind::Output(mut chunk)) if chunk.data.len() >= PASS_MIN => {
                let data = std::mem::take(&mut chunk.data);
                Some(encode_nested(
                    &self,
                    TASK_EVENT_OUTPUT,
                    &chunk,
                    OUTPUT_CHUNK_DATA,
                    data,
                    out,
                ))
            }
            kind => {
                self.kind = kind;
                encode_whole(&self, out);
                None
            }
        }
    }
}

impl Passthrough for EngineMessage {
    fn encode_passing(mut self, out: &mut BytesMut) -> Option<Bytes> {
        match self.kind.take() {
            Some(engine_message::Kind::Output(mut output)) if output.data.len() >= PASS_MIN => {
                let data = std::mem::take(&mut output.data);
                Some(encode_nested(
                    &self,
                    ENGINE_MESSAGE_OUTPUT,
                    &output,
                    TASK_OUTPUT_DATA,
                    data,
                    out,
                ))
            }
            kind => {
                self.kind = kind;
                encode_whole(&self, out);
                None
            }
        }
    }
}

impl Passthrough for HubMessage {
    fn encode_passing(mut self, out: &mut BytesMut) -> Option<Bytes> {
        match self.kind.take() {
            Some(hub_message::Kind::StdinData(mut stdin)) if stdin.data.len() >= PASS_MIN => {
                let data = std::mem::take(&mut stdin.data);
                Some(encode_nested(
                    &self,
                    HUB_MESSAGE_STDIN_DATA,
                    &stdin,
                    STDIN_DATA_DATA,
                    data,
                    out,
                ))
            }
            kind => {
                self.kind = kind;
                encode_whole(&self, out);
                None
            }
        }
    }
}

impl Passthrough for InteractRequest {
    fn encode_passing(mut self, out: &mut BytesMut) -> Option<Bytes> {
        match self.kind.take() {
            Some(interact_request::Kind::Stdin(data)) if data.len() >= PASS_MIN => {
                Some(encode_flat(&self, INTERACT_REQUEST_STDIN, data, out))
            }
            kind => {
                self.kind = kind;
                encode_whole(&self, out);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{OutputChunk, StdinData, TaskOutput};

    fn split(message: impl Passthrough) -> (Vec<u8>, Option<Bytes>) {
        let mut out = BytesMut::new();
        let passed = message.encode_passing(&mut out);
        (out.to_vec(), passed)
    }

    /// What tonic would send: the frame header, then prost's encoding.
    fn framed(message: &impl Message) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn bytes(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
    }

    /// Checks that `message` passes its bytes (or not) and that what goes on the wire decodes
    /// to it, at prost's length; returns whether the bytes are prost's own, byte for byte.
    fn wire_is_prosts<M: Passthrough + Message + Clone + Default + PartialEq + std::fmt::Debug>(
        message: M,
        passes: bool,
    ) -> bool {
        let expected = framed(&message);
        let (mut wire, passed) = split(message.clone());
        assert_eq!(passed.is_some(), passes);
        if let Some(data) = passed {
            wire.extend_from_slice(&data);
        }
        assert_eq!(wire.len(), expected.len());
        assert_eq!(wire[..PREFIX], expected[..PREFIX]);
        let decoded = M::decode(&wire[PREFIX..]).expect("decodes");
        assert!(decoded == message, "decodes to the message sent");
        wire == expected
    }

    #[test]
    fn large_output_passes_and_the_event_is_prosts_own() {
        for len in [PASS_MIN, 100_000, 1 << 20] {
            let event = TaskEvent {
                task_id: 7,
                engine_id: 3,
                seq: 1 << 40,
                time_us: 1_700_000_000_000_000,
                kind: Some(task_event::Kind::Output(OutputChunk {
                    stream: 2,
                    data: bytes(len),
                })),
            };
            assert!(wire_is_prosts(event, true), "{len} bytes: prost's order");
        }
    }

    #[test]
    fn engine_output_and_stdin_pass_and_decode_the_same() {
        // Their bytes field is not their message's last: the order differs from prost's, and
        // a decoder reads the same message.
        let output = EngineMessage {
            kind: Some(engine_message::Kind::Output(TaskOutput {
                task_id: 9,
                stream: 1,
                data: bytes(1 << 20),
                attempt: 2,
                chunk_seq: 300,
            })),
        };
        wire_is_prosts(output, true);
        let stdin = HubMessage {
            kind: Some(hub_message::Kind::StdinData(StdinData {
                task_id: 4,
                attempt: 1,
                offset: 1 << 33,
                data: bytes(PASS_MIN * 3),
                eof: true,
                hangup: false,
            })),
        };
        wire_is_prosts(stdin, true);
        let interact = InteractRequest {
            kind: Some(interact_request::Kind::Stdin(bytes(1 << 16))),
        };
        assert!(
            wire_is_prosts(interact, true),
            "the oneof is the message's one field"
        );
    }

    #[test]
    fn small_and_other_messages_are_copied_whole() {
        assert!(wire_is_prosts(
            TaskEvent {
                task_id: 1,
                kind: Some(task_event::Kind::Output(OutputChunk {
                    stream: 1,
                    data: bytes(PASS_MIN - 1),
                })),
                ..Default::default()
            },
            false,
        ));
        assert!(wire_is_prosts(TaskEvent::default(), false));
        assert!(wire_is_prosts(HubMessage::default(), false));
    }
}
