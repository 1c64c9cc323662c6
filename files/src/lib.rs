//! warren's file copy streams, shared by the engine and the client (`warren cp`).
//!
//! A copy is a stream of [`CopyItem`](warren_proto::v1::CopyItem)s (files.proto): for each
//! directory or symlink one entry, for each file an entry, its bytes in chunks and its
//! SHA-256. [`Source`] reads local paths into such a stream, never holding more than one
//! chunk; [`Sink`] writes a stream back, each file under a temporary name until its digest is
//! checked, then renamed into place, so an interrupted copy leaves nothing under a real name.
//! Both are blocking (plain `std::fs`): callers run them on a thread of their own and move
//! items through channels with whatever flow control their transport needs. Every failure is
//! a [`CopyError`] that says what to do and carries its gRPC code.

mod error;
mod meta;
mod sink;
mod source;

pub use error::{CopyError, ErrorKind, Result};
pub use meta::{MAX_PATH, MODE_BITS, entry_path};
pub use sink::Sink;
pub use source::{CHUNK, Source, total_size};

#[cfg(test)]
mod tests;
