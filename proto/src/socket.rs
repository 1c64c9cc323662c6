//! A Unix stream for gRPC that wakes its process only for what the process waits for.
//!
//! tokio registers a stream for reading and writing at once. A Unix socket tells its writer
//! "writable" each time the reader takes bytes, so every message a peer read woke the sender,
//! which mostly had nothing more to write (and the reader paid for the wake-up inside its
//! `recv`). [`QuietStream`] is registered for reading only; a write that finds no room
//! registers a second descriptor of the socket for writing and waits on it, until writes go
//! through at once again.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Writes in a row that go through at once before a stream stops watching for room. A bulk
/// writer finds the socket full about every other write, and watching anew costs four system
/// calls (a descriptor duplicated, registered, deregistered, closed).
const ROOM_WATCHED_FOR: u8 = 8;

/// Who is at the other end of a stream: the kernel's word for it (`SO_PEERCRED`), read when
/// the stream was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's user id.
    pub uid: u32,
    /// The peer's process id (0 when the kernel does not say, as across a user namespace).
    pub pid: u32,
}

/// A connected Unix stream, woken for reading only (see the module's doc).
#[derive(Debug)]
pub struct QuietStream {
    socket: AsyncFd<UnixStream>,
    /// A second descriptor of the socket, registered for writing since a write waited for room.
    room: Option<AsyncFd<OwnedFd>>,
    /// Writes in a row that went through at once while `room` was watched.
    at_once: u8,
    peer: PeerCred,
}

impl QuietStream {
    /// Takes over a stream tokio made (from a listener, `connect` or `pair`), registering it
    /// anew with the reactor of the runtime this runs in.
    pub fn from_tokio(socket: tokio::net::UnixStream) -> io::Result<Self> {
        let cred = socket.peer_cred()?;
        let peer = PeerCred {
            uid: cred.uid(),
            pid: cred.pid().unwrap_or(0).max(0) as u32,
        };
        // Still non-blocking, and no longer registered.
        let socket = socket.into_std()?;
        Ok(Self {
            socket: register(socket, Interest::READABLE)?,
            room: None,
            at_once: 0,
            peer,
        })
    }

    /// Who is at the other end.
    pub fn peer(&self) -> PeerCred {
        self.peer
    }

    /// Writes with `write`, at once if the socket has room, else once it has.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(BorrowedFd<'_>) -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        match write(self.socket.get_ref().as_fd()) {
            Ok(written) => {
                if self.room.is_some() {
                    self.at_once += 1;
                    if self.at_once >= ROOM_WATCHED_FOR {
                        // Room again: stop being woken by the reader's progress.
                        self.room = None;
                    }
                }
                return Poll::Ready(Ok(written));
            }
            Err(rustix::io::Errno::AGAIN) => self.at_once = 0,
            Err(err) => return Poll::Ready(Err(err.into())),
        }
        let room = match &mut self.room {
            Some(room) => room,
            None => match watch_for_room(self.socket.get_ref()) {
                Ok(room) => self.room.insert(room),
                Err(_out_of_descriptors) => {
                    // Rather than fail the connection, try again on the runtime's next turn,
                    // until the reader makes room (or a descriptor is free again).
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            },
        };
        loop {
            let mut ready = ready!(room.poll_write_ready(cx))?;
            match ready.try_io(|fd| write(fd.get_ref().as_fd()).map_err(io::Error::from)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncRead for QuietStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.socket.poll_read_ready(cx))?;
            match ready.try_io(|socket| read_into(socket.get_ref().as_fd(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A second descriptor of `socket`, registered for writing.
fn watch_for_room(socket: &UnixStream) -> io::Result<AsyncFd<OwnedFd>> {
    register(socket.as_fd().try_clone_to_owned()?, Interest::WRITABLE)
}

/// Registers a descriptor the caller owns with the runtime's reactor, for `interest`.
#[allow(unsafe_code)]
fn register<T: AsRawFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T` is a `UnixStream` or an `OwnedFd`: it owns its descriptor, which stays open
    // and the same until the `AsyncFd`, which owns `T`, is dropped.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|err| err.into_parts().1)
}

/// Reads what the socket has into `buf`'s unfilled part, without zeroing it first.
#[allow(unsafe_code)]
fn read_into(socket: BorrowedFd<'_>, buf: &mut ReadBuf<'_>) -> io::Result<()> {
    // SAFETY: `read` only writes initialized bytes into the slice, and nothing de-initializes
    // any part of it.
    let unfilled = unsafe { buf.unfilled_mut() };
    let (read, _) = rustix::io::read(socket, unfilled)?;
    let read = read.len();
    // SAFETY: the kernel wrote `read` bytes at the start of the unfilled part.
    unsafe { buf.assume_init(read) };
    buf.advance(read);
    Ok(())
}

impl AsyncWrite for QuietStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |socket| rustix::io::write(socket, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |socket| rustix::io::writev(socket, slices))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(
            match self.socket.get_ref().shutdown(std::net::Shutdown::Write) {
                Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
                shut => shut,
            },
        )
    }
}

#[cfg(feature = "server")]
impl tonic::transport::server::Connected for QuietStream {
    type ConnectInfo = PeerCred;

    fn connect_info(&self) -> PeerCred {
        self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (QuietStream, QuietStream) {
        let (a, b) = tokio::net::UnixStream::pair().expect("a socket pair");
        (
            QuietStream::from_tokio(a).expect("a"),
            QuietStream::from_tokio(b).expect("b"),
        )
    }

    #[tokio::test]
    async fn the_peer_is_this_process() {
        let (a, _b) = pair();
        assert_eq!(
            a.peer(),
            PeerCred {
                uid: rustix::process::geteuid().as_raw(),
                pid: std::process::id(),
            }
        );
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_shutdown_ends_the_readers_stream() {
        let (mut a, mut b) = pair();
        a.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        b.write_all(b"pong").await.expect("write back");
        a.read_exact(&mut got).await.expect("read back");
        assert_eq!(&got, b"pong");
        a.shutdown().await.expect("shutdown");
        assert_eq!(b.read(&mut got).await.expect("read the end"), 0);
    }

    #[tokio::test]
    async fn a_write_with_no_room_waits_for_it_and_writes_that_go_at_once_stop_the_watch() {
        let (mut a, mut b) = pair();
        let block = vec![7u8; 64 << 10];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut written = 0;
        // Nobody reads: the socket fills up, and the writer starts to watch for room.
        for _ in 0..10_000 {
            match Pin::new(&mut a).poll_write(&mut cx, &block) {
                Poll::Ready(result) => written += result.expect("write"),
                Poll::Pending => break,
            }
        }
        assert!(
            a.room.is_some(),
            "the socket never filled ({written} bytes)"
        );
        let mut chunk = vec![0u8; 64 << 10];
        let mut read = 0;
        while read < written {
            let got = b.read(&mut chunk).await.expect("read");
            assert!(got > 0 && chunk[..got].iter().all(|&byte| byte == 7));
            read += got;
        }
        // Room again: writes go at once, and after a few the watch ends.
        for sent in 1..=ROOM_WATCHED_FOR {
            assert!(a.room.is_some(), "stopped watching after {sent} writes");
            match Pin::new(&mut a).poll_write(&mut cx, b"!") {
                Poll::Ready(result) => assert_eq!(result.expect("write"), 1),
                Poll::Pending => panic!("an empty socket had no room"),
            }
        }
        assert!(a.room.is_none(), "still woken by the reader's progress");
        let mut got = 0;
        while got < usize::from(ROOM_WATCHED_FOR) {
            got += b.read(&mut chunk).await.expect("read");
        }
    }
}
