//! The cell protocol's frames (docs/cell-protocol.md) as the engine writes and reads them: a
//! header line whose last token is the body's length, then the body.
//!
//! Replies are parsed as they arrive, a few bytes or many at a time. A body longer than
//! [`MAX_KEPT`] (a huge `repr`) is read to its end but only its first [`MAX_KEPT`] bytes are
//! kept, so an adapter can't make the engine hold more than that, and the session goes on.

use bytes::{Buf, BytesMut};

/// The longest header line.
pub(super) const MAX_HEADER: usize = 4096;
/// The most of a reply's body the engine keeps (a value's repr, an error's text).
pub(super) const MAX_KEPT: usize = 1 << 20;

/// A message from the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `ready VERSION LENGTH` and the banner.
    Ready {
        /// The protocol version the adapter speaks.
        version: String,
        /// Its one-line banner.
        banner: String,
    },
    /// `done ID ...`: the cell with this id ended.
    Done {
        /// The cell's id, as sent in `run`.
        id: String,
        /// How it ended.
        outcome: Done,
    },
    /// A message of a type this engine does not know (skipped, as the protocol says).
    Unknown,
}

/// How a cell ended, as its `done` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// `done ID ok`: the value's repr (empty: no value).
    Ok {
        /// The repr.
        value: String,
    },
    /// `done ID error`: the error's name, value and traceback.
    Error {
        /// e.g. `ZeroDivisionError`.
        name: String,
        /// e.g. `division by zero`.
        value: String,
        /// The traceback text.
        traceback: String,
    },
}

/// The adapter broke the protocol (the session is then killed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the interpreter broke the cell protocol: {0}")]
pub struct ProtocolError(pub String);

/// A header read, and how much of its body is still to come.
#[derive(Debug)]
struct Pending {
    tokens: Vec<String>,
    length: usize,
    /// Body bytes read so far (kept or not).
    read: usize,
    kept: Vec<u8>,
}

/// Replies parsed from the bytes of the reply pipe, as they come.
#[derive(Debug, Default)]
pub struct Frames {
    buf: BytesMut,
    pending: Option<Pending>,
}

impl Frames {
    /// Adds bytes read from the reply pipe.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether bytes of an unfinished frame are waiting (at end of file, the frame is cut).
    pub fn is_mid_frame(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }

    /// The next complete reply, if the bytes so far hold one.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolError> {
        loop {
            let Some(pending) = &mut self.pending else {
                let Some(newline) = self.buf.iter().position(|&b| b == b'\n') else {
                    if self.buf.len() > MAX_HEADER {
                        return Err(ProtocolError(format!(
                            "a header longer than {MAX_HEADER} bytes"
                        )));
                    }
                    return Ok(None);
                };
                let line = self.buf.split_to(newline + 1);
                self.pending = Some(header(&line[..newline])?);
                continue;
            };
            let wanted = pending.length - pending.read;
            let take = wanted.min(self.buf.len());
            let room = MAX_KEPT.saturating_sub(pending.kept.len()).min(take);
            pending.kept.extend_from_slice(&self.buf[..room]);
            self.buf.advance(take);
            pending.read += take;
            if pending.read < pending.length {
                return Ok(None);
            }
            let Some(done) = self.pending.take() else {
                return Ok(None);
            };
            return reply(done).map(Some);
        }
    }
}

/// Parses a header line into its tokens and body length.
fn header(line: &[u8]) -> Result<Pending, ProtocolError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| ProtocolError("a header that is not ASCII".into()))?;
    let tokens: Vec<String> = text.split(' ').map(str::to_owned).collect();
    let length = tokens
        .last()
        .and_then(|t| t.parse::<usize>().ok())
        .ok_or_else(|| ProtocolError(format!("no body length at the end of header {text:?}")))?;
    Ok(Pending {
        tokens,
        length,
        read: 0,
        kept: Vec::new(),
    })
}

/// Text from bytes, as UTF-8 (invalid sequences replaced).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A complete frame as a reply.
fn reply(frame: Pending) -> Result<Reply, ProtocolError> {
    let tokens: Vec<&str> = frame.tokens.iter().map(String::as_str).collect();
    let bad = || ProtocolError(format!("a malformed header {:?}", tokens.join(" ")));
    let cut = |mut text: String| {
        if frame.length > MAX_KEPT {
            text.push_str(&format!(
                "\n[warren: cut at {MAX_KEPT} of {} bytes]",
                frame.length
            ));
        }
        text
    };
    match tokens.as_slice() {
        ["ready", version, _] => Ok(Reply::Ready {
            version: (*version).to_owned(),
            banner: text(&frame.kept),
        }),
        ["done", id, "ok", _] => Ok(Reply::Done {
            id: (*id).to_owned(),
            outcome: Done::Ok {
                value: cut(text(&frame.kept)),
            },
        }),
        ["done", id, "error", name_len, value_len, _] => {
            let name_len: usize = name_len.parse().map_err(|_| bad())?;
            let value_len: usize = value_len.parse().map_err(|_| bad())?;
            if name_len.saturating_add(value_len) > frame.length {
                return Err(bad());
            }
            let kept = &frame.kept;
            let at = |n: usize| n.min(kept.len());
            let name = text(&kept[..at(name_len)]);
            let value = text(&kept[at(name_len)..at(name_len + value_len)]);
            let traceback = cut(text(&kept[at(name_len + value_len)..]));
            Ok(Reply::Done {
                id: (*id).to_owned(),
                outcome: Done::Error {
                    name,
                    value,
                    traceback,
                },
            })
        }
        ["ready", ..] | ["done", ..] => Err(bad()),
        _ => Ok(Reply::Unknown),
    }
}

/// The `run` frame for a cell.
pub(super) fn run_frame(id: u64, code: &str) -> Vec<u8> {
    let mut frame = format!("run {id} {}\n", code.len()).into_bytes();
    frame.extend_from_slice(code.as_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8], step: usize) -> Result<Vec<Reply>, ProtocolError> {
        let mut frames = Frames::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step.max(1)) {
            frames.push(chunk);
            while let Some(reply) = frames.next_reply()? {
                out.push(reply);
            }
        }
        assert!(!frames.is_mid_frame());
        Ok(out)
    }

    #[test]
    fn the_documents_example_parses_whatever_the_pieces() {
        let bytes = b"ready 1 13\nPython 3.11.7done 7 ok 0\ndone 8 ok 2\n42done 9 error 17 16 52\nZeroDivisionErrordivision by zeroTraceback...\n  1/0\nxx 1 0\n";
        for step in [1, 2, 7, 1000] {
            let replies = all(bytes, step).expect("parse");
            assert_eq!(replies.len(), 5, "{replies:?}");
            assert_eq!(
                replies[0],
                Reply::Ready {
                    version: "1".into(),
                    banner: "Python 3.11.7".into()
                }
            );
            assert_eq!(
                replies[2],
                Reply::Done {
                    id: "8".into(),
                    outcome: Done::Ok { value: "42".into() }
                }
            );
            let Reply::Done {
                outcome:
                    Done::Error {
                        name,
                        value,
                        traceback,
                    },
                ..
            } = &replies[3]
            else {
                panic!("{replies:?}")
            };
            assert_eq!(
                (name.as_str(), value.as_str()),
                ("ZeroDivisionError", "division by zero")
            );
            assert_eq!(traceback, "Traceback...\n  1/0\n");
            assert_eq!(replies[4], Reply::Unknown);
        }
    }

    #[test]
    fn a_huge_body_is_read_through_and_cut() {
        let body = vec![b'x'; MAX_KEPT + 10];
        let mut bytes = format!("done 3 ok {}\n", body.len()).into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"done 4 ok 0\n");
        let replies = all(&bytes, 65536).expect("parse");
        let Reply::Done {
            outcome: Done::Ok { value },
            ..
        } = &replies[0]
        else {
            panic!("{replies:?}")
        };
        assert!(value.starts_with(&"x".repeat(100)) && value.ends_with("bytes]"));
        assert!(value.len() < MAX_KEPT + 100);
        assert_eq!(replies.len(), 2);
    }

    #[test]
    fn malformed_headers_are_errors() {
        for bad in [
            &b"done 1 ok\n"[..],
            b"ready x\n",
            b"done 1 error 5 5 3\nabc",
            b"done 1 ok -1\n",
        ] {
            let mut frames = Frames::default();
            frames.push(bad);
            assert!(
                frames.next_reply().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut frames = Frames::default();
        frames.push(&vec![b'a'; MAX_HEADER + 1]);
        assert!(frames.next_reply().is_err());
        assert_eq!(run_frame(12, "x = 1"), b"run 12 5\nx = 1");
    }
}
