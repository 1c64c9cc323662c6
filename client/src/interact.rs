//! [`Client::interact`]: run a job in the foreground while streaming its stdin, as `ssh` and
//! `docker exec -i` do, through [`Stdin`].

use bytes::Bytes;
use futures_util::stream;
use tokio::sync::mpsc;
use tonic::Status;
use warren_proto::passthrough::call_streaming;
use warren_proto::v1::{ExecuteRequest, InteractRequest, WindowSize, interact_request::Kind};

use crate::client::learn_from_refusal;
use crate::events::{Events, RawEvents};
use crate::{Client, Error, Result};

/// Messages waiting to go to the hub; past it, sending waits (the hub's window holds the
/// rest back).
const QUEUE: usize = 4;

/// The method that runs tasks with streamed stdin.
const INTERACT: &str = "/warren.v1.Execution/Interact";
/// The largest event the client decodes: tonic's default, as on the other calls.
const MAX_EVENT: usize = 4 << 20;
/// The most stdin one message carries: larger sends go in pieces, each well within what the
/// hub takes in one message and within its window.
const PIECE: usize = 1 << 20;

/// `data` in pieces of at most [`PIECE`] bytes (no copy).
fn pieces(data: Bytes) -> impl Iterator<Item = Bytes> {
    let len = data.len();
    (0..len)
        .step_by(PIECE)
        .map(move |at| data.slice(at..len.min(at + PIECE)))
}

/// The stdin of the tasks of an [`interact`](Client::interact) call: every task gets the
/// same bytes, in order. Sending waits while the slowest task has a full window (the hub's
/// `--stdin-window`), so a task that reads slowly holds the sender back. Dropping every clone
/// ends stdin as [`Stdin::end`] does.
///
/// ```no_run
/// # async fn f(client: warren::Client) -> warren::Result<()> {
/// let (stdin, events) = client.interact(warren::Job::argv(["wc", "-l"])).await?;
/// stdin.send("one\ntwo\n").await?;
/// stdin.end().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Stdin {
    tx: mpsc::Sender<InteractRequest>,
}

fn message(kind: Kind) -> InteractRequest {
    InteractRequest { kind: Some(kind) }
}

impl Stdin {
    async fn put(&self, kind: Kind) -> Result<()> {
        self.tx
            .send(message(kind))
            .await
            .map_err(|_| Error::CallEnded)
    }

    /// Sends the next bytes of stdin.
    ///
    /// ```no_run
    /// # async fn f(stdin: warren::Stdin) -> warren::Result<()> {
    /// stdin.send(&b"hello\n"[..]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<()> {
        for piece in pieces(data.into()) {
            self.put(Kind::Stdin(piece)).await?;
        }
        Ok(())
    }

    /// Sends the next bytes from a thread outside the async runtime (one reading a blocking
    /// file, say), waiting there for room.
    ///
    /// ```no_run
    /// # fn f(stdin: warren::Stdin) -> warren::Result<()> {
    /// std::thread::spawn(move || stdin.blocking_send(&b"from a thread\n"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn blocking_send(&self, data: impl Into<Bytes>) -> Result<()> {
        for piece in pieces(data.into()) {
            self.tx
                .blocking_send(message(Kind::Stdin(piece)))
                .map_err(|_| Error::CallEnded)?;
        }
        Ok(())
    }

    /// [`Stdin::end`] from a thread outside the async runtime.
    ///
    /// ```no_run
    /// # fn f(stdin: warren::Stdin) -> warren::Result<()> {
    /// stdin.blocking_end()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn blocking_end(&self) -> Result<()> {
        self.tx
            .blocking_send(message(Kind::Eof(true)))
            .map_err(|_| Error::CallEnded)
    }

    /// Ends stdin: each task's stdin is closed after the bytes sent (a task on a terminal
    /// gets its EOF character, Ctrl-D).
    ///
    /// ```no_run
    /// # async fn f(stdin: warren::Stdin) -> warren::Result<()> {
    /// stdin.end().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn end(&self) -> Result<()> {
        self.put(Kind::Eof(true)).await
    }

    /// Tells tasks on a terminal its new size.
    ///
    /// ```no_run
    /// # async fn f(stdin: warren::Stdin) -> warren::Result<()> {
    /// stdin.resize(50, 132).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let size = WindowSize {
            rows: rows.into(),
            cols: cols.into(),
        };
        self.put(Kind::Resize(size)).await
    }
}

impl Client {
    /// Submits a job and follows its tasks as [`Client::run`] does, while the caller streams
    /// their stdin through the [`Stdin`] returned (`Execution.Interact`). Use
    /// [`Job::tty`](crate::Job::tty) for a terminal. If the call breaks (the hub went away)
    /// stdin can't be resumed: the tasks' stdin is closed if the hub is still there (on a
    /// terminal, they are hung up), and cut by their engines if it restarted.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let (stdin, mut events) = client.interact(warren::Job::argv(["cat"])).await?;
    /// stdin.send("hello\n").await?;
    /// stdin.end().await?;
    /// while let Some(event) = events.try_next().await? {
    ///     println!("{:?}", event.kind);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn interact(&self, job: impl Into<ExecuteRequest>) -> Result<(Stdin, Events)> {
        let request = job.into();
        let mut retries = 0;
        loop {
            let (tx, mut rx) = mpsc::channel(QUEUE);
            let start = message(Kind::Start(request.clone()));
            tx.try_send(start).map_err(|_| Error::CallEnded)?;
            let requests = stream::poll_fn(move |cx| rx.poll_recv(cx));
            // Through passthrough: stdin goes to the socket without a copy into tonic's buffer.
            let mut channel = self.channel().clone();
            let call = call_streaming(&mut channel, INTERACT, requests, MAX_EVENT);
            let answer = tokio::time::timeout(self.timeout(), call)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "the hub did not answer within {:?}",
                        self.timeout()
                    )))
                });
            match answer {
                Ok(response) => {
                    let events = Events::new(RawEvents::new(response.into_inner(), self.idle()));
                    return Ok((Stdin { tx }, events));
                }
                Err(status) if retries < 2 && learn_from_refusal(self.signer(), &status) => {
                    retries += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_sends_go_in_pieces_and_empty_ones_not_at_all() {
        let data = Bytes::from(vec![7u8; 2 * PIECE + 5]);
        let sizes: Vec<usize> = pieces(data).map(|p| p.len()).collect();
        assert_eq!(sizes, vec![PIECE, PIECE, 5]);
        assert_eq!(pieces(Bytes::new()).count(), 0);
    }
}
