//! A task's streamed stdin and its terminal: the feeder writes what the hub sends into the
//! task (a pipe, or the terminal's master side) and tells the hub how much the task took; the
//! terminal's pump reads what the task writes to it, as one output stream.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren_proto::v1::{OutputStream, StdinData, TaskState};

use super::Run;
use crate::process;
use crate::pty::Master;

/// Bytes read from a terminal at once: what a terminal carries comes in small pieces.
const TTY_READ: usize = 64 << 10;

/// Where a task's stdin goes.
pub(super) enum Sink {
    /// A pipe: its end is closing it.
    Pipe(ChildStdin),
    /// A terminal: its end is the EOF character; a hangup is SIGHUP.
    Tty(Arc<Master>),
}

impl Sink {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Pipe(pipe) => pipe.write(data).await,
            Self::Tty(master) => master.write(data).await,
        }
    }
}

/// Writes the stdin the hub sends into the task, in order and each byte once (a resent chunk
/// is skipped as far as it was written), until its end; reports progress as it goes.
pub(super) async fn feed(
    mut sink: Sink,
    mut chunks: mpsc::UnboundedReceiver<StdinData>,
    run: Run,
    pgid: u32,
) {
    let (task_id, attempt) = (run.task_id, run.attempt);
    let mut written: u64 = 0;
    while let Some(chunk) = chunks.recv().await {
        if chunk.offset > written {
            tracing::warn!(
                offset = chunk.offset,
                written,
                "stdin arrived past a gap; closing the task's stdin"
            );
            break;
        }
        let skip = usize::try_from(written - chunk.offset).unwrap_or(usize::MAX);
        let mut rest = chunk.data.get(skip..).unwrap_or_default();
        let mut broken = false;
        while !rest.is_empty() {
            match sink.write(rest).await {
                Ok(0) | Err(_) => {
                    // The task closed its stdin (or ended): it takes no more.
                    broken = true;
                    break;
                }
                Ok(n) => {
                    written += n as u64;
                    rest = &rest[n..];
                }
            }
        }
        if broken {
            break;
        }
        if chunk.eof || chunk.hangup {
            end(sink, chunk.hangup, pgid).await;
            run.tasks.stdin_progress(task_id, attempt, written, true);
            return;
        }
        run.tasks.stdin_progress(task_id, attempt, written, false);
    }
    run.tasks.stdin_progress(task_id, attempt, written, true);
}

/// Ends a task's stdin: a pipe is closed; a terminal gets its EOF character, or for a hangup
/// (the client went away) its job gets SIGHUP, as when a terminal closes.
async fn end(sink: Sink, hangup: bool, pgid: u32) {
    match sink {
        Sink::Pipe(pipe) => drop(pipe),
        Sink::Tty(_) if hangup => {
            process::signal_group(pgid, rustix::process::Signal::HUP.as_raw());
        }
        Sink::Tty(master) => {
            let _ = master.write(&[master.eof_char()]).await;
        }
    }
}

/// Streams what the task writes to its terminal to the hub, as stdout.
pub(super) async fn pump_tty(master: Arc<Master>, run: Run) {
    let mut buffer = vec![0u8; TTY_READ];
    loop {
        match master.read(&mut buffer).await {
            Ok(0) => return,
            Ok(n) => {
                let data = Bytes::copy_from_slice(&buffer[..n]);
                let stream = OutputStream::Stdout as i32;
                if !run
                    .tasks
                    .output(run.task_id, run.attempt, stream, data)
                    .await
                {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(%err, "reading the task's terminal failed");
                return;
            }
        }
    }
}

/// Begins ending a task whose stdin was cut (once): SIGHUP now, as a hung-up terminal or a
/// dropped ssh connection would, SIGKILL after the grace period; it ends FAILED, saying why.
pub(super) fn hang_up(
    ending: &mut Option<(TaskState, String)>,
    kill_at: &mut Option<Instant>,
    (pgid, grace): (u32, Duration),
    why: String,
) {
    if ending.is_none() {
        *ending = Some((TaskState::Failed, why));
        process::signal_group(pgid, rustix::process::Signal::HUP.as_raw());
        *kill_at = Some(Instant::now() + grace);
    }
}
