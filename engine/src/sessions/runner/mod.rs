//! One session's runner: its interpreter, the cells queued for it, one running at a time, and
//! everything that ends them (their `done`, an interrupt, a timeout, the interpreter's death,
//! closing the session).
//!
//! One task does it all, in one loop over the interpreter's pipes, its exit, the commands and
//! the timers, so that the order of events is the order they are handled in: the bytes read
//! from fds 1 and 2 go to the running cell, and when its `done` is read, fds 1 and 2 are read
//! until they would block before the cell ends (every byte written before `done` belongs to
//! that cell). Death is seen at once, as end of file on the reply pipe or the exit, whichever
//! comes first.

use bytes::BytesMut;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren_proto::now_us;
use warren_proto::os::signals;
use warren_proto::v1::{
    CellError, SessionEnded, SessionSpec, TaskResult, TaskStarted, TaskState, session_ended,
    task_result,
};

use super::protocol::{Done, Frames, Reply, run_frame};
use super::{Sessions, spawn};
use crate::control::{Cell, Control, SessionCommand};
use crate::process;
use crate::tasks::Tasks;

mod controls;
mod ending;

/// Bytes read from an output pipe at most at once.
const CHUNK: usize = 1 << 20;
/// What the engine keeps of stderr written while no cell runs, to say why a start failed.
const STDERR_TAIL: usize = 2048;
/// How soon a second SIGINT follows one sent just after a `run` (see the protocol).
const RESEND: Duration = Duration::from_millis(100);
/// How long the engine waits for an interpreter whose reply pipe has closed to exit, before
/// killing its group.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The cell running now.
struct Running {
    cell: Cell,
    started_us: i64,
    sent_at: Instant,
    /// Why the engine is ending it (timeout, abort, close), if it is.
    ending: Option<(TaskState, String)>,
    deadline: Option<Instant>,
    resend_at: Option<Instant>,
}

/// How the interpreter ended.
struct Death {
    status: Option<ExitStatus>,
    /// What ended it, if the engine knows better than the status (a protocol error...).
    why: Option<String>,
}

/// A session's runner (see the module doc).
pub(super) struct Runner {
    pub(super) id: u64,
    pub(super) generation: u32,
    pub(super) spec: SessionSpec,
    pub(super) tasks: Arc<Tasks>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) grace: Duration,
    pub(super) commands: mpsc::UnboundedReceiver<SessionCommand>,
    queue: VecDeque<Cell>,
    running: Option<Running>,
    /// Set once the session is closing: why.
    closing: Option<String>,
    /// When the process group gets SIGKILL (after a grace period).
    kill_at: Option<Instant>,
    pgid: u32,
    stderr_tail: Vec<u8>,
}

impl Runner {
    /// A runner for session `id`'s interpreter of this generation.
    pub(super) fn new(
        id: u64,
        generation: u32,
        spec: SessionSpec,
        sessions: Arc<Sessions>,
        commands: mpsc::UnboundedReceiver<SessionCommand>,
    ) -> Self {
        Self {
            id,
            generation,
            spec,
            tasks: sessions.tasks.clone(),
            grace: sessions.grace,
            sessions,
            commands,
            queue: VecDeque::new(),
            running: None,
            closing: None,
            kill_at: None,
            pgid: 0,
            stderr_tail: Vec::new(),
        }
    }

    /// Runs the session until it is closed (or replaced by a restart).
    pub(super) async fn run(mut self) {
        match spawn::start(self.id, &self.spec) {
            Ok(started) => {
                self.pgid = started.child.id().unwrap_or(0);
                let death = self.serve(started).await;
                self.died(death).await;
            }
            Err(failed) => {
                let ended = SessionEnded {
                    session_id: self.id,
                    generation: self.generation,
                    reason: format!("the interpreter could not start: {}", failed.reason),
                    exit: Some(session_ended::Exit::ExitCode(failed.exit_code)),
                    closed: false,
                    ended_us: now_us(),
                };
                tracing::warn!(reason = %ended.reason, "session could not start");
                self.sessions.ended(ended);
            }
        }
        self.dead().await;
        self.sessions.gone(self.id, self.generation);
    }

    /// Serves the interpreter until it ends; returns how.
    async fn serve(&mut self, started: spawn::Started) -> Death {
        let spawn::Started {
            mut child,
            commands,
            mut replies,
            mut stdout,
            mut stderr,
        } = started;
        let mut commands = Some(commands);
        let mut frames = Frames::default();
        let mut ready = false;
        let mut out_open = true;
        let mut err_open = true;
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            if ready
                && self.running.is_none()
                && self.closing.is_none()
                && let Some(pipe) = commands.as_mut()
                && let Some(cell) = self.queue.pop_front()
            {
                if let Err(err) = self.start_cell(pipe, cell).await {
                    tracing::debug!(%err, "cannot send a cell: the interpreter is going");
                }
                continue;
            }
            if self.closing.is_some() {
                // End of input: an idle adapter exits.
                commands = None;
            }
            let timer = self.next_timer();
            // Unbiased: a cell that floods its output must not starve an interrupt.
            tokio::select! {
                status = child.wait() => {
                    self.drain(&mut stdout, &mut stderr, &mut buf).await;
                    return Death { status: status.ok(), why: None };
                }
                read = replies.readable() => {
                    if read.is_err() {
                        return self.reap(&mut child, &mut stdout, &mut stderr, None).await;
                    }
                    match read_some(&mut replies, &mut buf) {
                        Some(0) => {
                            let why = frames.is_mid_frame().then(|| {
                                "the interpreter broke the cell protocol: its reply pipe closed inside a frame".to_owned()
                            });
                            return self.reap(&mut child, &mut stdout, &mut stderr, why).await;
                        }
                        Some(_) => frames.push(&buf.split()),
                        None => continue,
                    }
                    loop {
                        let reply = match frames.next_reply() {
                            Ok(Some(reply)) => reply,
                            Ok(None) => break,
                            Err(err) => {
                                let why = format!("{err}; it was killed");
                                return self.reap(&mut child, &mut stdout, &mut stderr, Some(why)).await;
                            }
                        };
                        if let Err(why) = self.reply(reply, &mut ready, child.id(), &mut stdout, &mut stderr, &mut buf).await {
                            return self.reap(&mut child, &mut stdout, &mut stderr, Some(why)).await;
                        }
                    }
                }
                read = stdout.readable(), if out_open => {
                    out_open = read.is_ok() && self.pump(&mut stdout, 1, &mut buf).await;
                }
                read = stderr.readable(), if err_open => {
                    err_open = read.is_ok() && self.pump(&mut stderr, 2, &mut buf).await;
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    // The registry let go: the engine is exiting.
                    None => self.close("the engine is exiting".into(), false),
                },
                () = sleep_until(timer) => self.timers(),
            }
        }
    }

    /// Sends a cell's `run` and counts it started.
    async fn start_cell(&mut self, pipe: &mut pipe::Sender, cell: Cell) -> std::io::Result<()> {
        let frame = run_frame(cell.task_id, &cell.code);
        let started_us = now_us();
        let sent_at = Instant::now();
        self.tasks.started(
            cell.task_id,
            cell.attempt,
            TaskStarted {
                task_id: cell.task_id,
                pid: self.pgid,
                started_us,
                attempt: cell.attempt,
            },
        );
        let deadline = cell.timeout.map(|limit| sent_at + limit);
        self.running = Some(Running {
            cell,
            started_us,
            sent_at,
            ending: None,
            deadline,
            resend_at: None,
        });
        pipe.write_all(&frame).await
    }

    /// Handles one reply; an error (why) if the interpreter must be killed.
    async fn reply(
        &mut self,
        reply: Reply,
        ready: &mut bool,
        pid: Option<u32>,
        stdout: &mut pipe::Receiver,
        stderr: &mut pipe::Receiver,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        match reply {
            Reply::Ready { version, banner } if !*ready => {
                if version != "1" {
                    return Err(format!(
                        "the interpreter speaks cell protocol {version:?}; this engine speaks 1; it was killed"
                    ));
                }
                *ready = true;
                self.stderr_tail.clear();
                tracing::info!(pid = ?pid, %banner, "session ready");
                self.sessions
                    .started(self.id, self.generation, pid.unwrap_or(0), banner);
                Ok(())
            }
            Reply::Done { id, outcome } => {
                let expected = self.running.as_ref().map(|r| r.cell.task_id.to_string());
                if expected.as_deref() != Some(id.as_str()) {
                    return Err(format!(
                        "the interpreter broke the cell protocol: `done {id}` while {}; it was killed",
                        expected.map_or("no cell ran".into(), |e| format!("cell {e} ran"))
                    ));
                }
                // Every byte written before `done` is in the pipes now: it is this cell's.
                self.drain(stdout, stderr, buf).await;
                if let Some(running) = self.running.take() {
                    self.finish_done(running, outcome);
                }
                Ok(())
            }
            Reply::Ready { .. } => Err(
                "the interpreter broke the cell protocol: a second `ready`; it was killed".into(),
            ),
            Reply::Unknown => Ok(()),
        }
    }

    /// Ends the running cell as its `done` says (or as the engine was ending it).
    fn finish_done(&self, running: Running, outcome: Done) {
        let Running {
            cell,
            started_us,
            ending,
            ..
        } = running;
        let mut result = TaskResult {
            started_us,
            finished_us: now_us(),
            attempt: cell.attempt,
            ..Default::default()
        };
        match outcome {
            Done::Ok { value } => {
                result.state = TaskState::Succeeded as i32;
                result.value_repr = value;
            }
            Done::Error {
                name,
                value,
                traceback,
            } => {
                result.state = TaskState::Failed as i32;
                result.error = if value.is_empty() {
                    name.clone()
                } else {
                    format!("{name}: {value}")
                };
                result.cell_error = Some(CellError {
                    name,
                    value,
                    traceback,
                });
            }
        }
        if let Some((state, why)) = ending {
            result.state = state as i32;
            result.error = why;
        }
        self.tasks.finished(cell.task_id, cell.attempt, result);
    }

    /// Reads one chunk of output and gives it to the running cell; false at end of file.
    async fn pump(&mut self, from: &mut pipe::Receiver, stream: i32, buf: &mut BytesMut) -> bool {
        match read_some(from, buf) {
            Some(0) => false,
            Some(_) => {
                let data = buf.split().freeze();
                self.output(stream, data).await;
                true
            }
            None => true,
        }
    }

    /// Output of the interpreter: the running cell's, or (while none runs) kept as a tail of
    /// stderr for messages and otherwise dropped.
    async fn output(&mut self, stream: i32, data: bytes::Bytes) {
        match &self.running {
            Some(running) => {
                let (task_id, attempt) = (running.cell.task_id, running.cell.attempt);
                self.tasks.output(task_id, attempt, stream, data).await;
            }
            None => {
                if stream == 2 {
                    self.stderr_tail.extend_from_slice(&data);
                    let excess = self.stderr_tail.len().saturating_sub(STDERR_TAIL);
                    self.stderr_tail.drain(..excess);
                }
                tracing::debug!(stream, bytes = data.len(), "output while no cell ran");
            }
        }
    }

    /// Reads fds 1 and 2 until they would block (or end): what was written before now.
    async fn drain(
        &mut self,
        stdout: &mut pipe::Receiver,
        stderr: &mut pipe::Receiver,
        buf: &mut BytesMut,
    ) {
        for (from, stream) in [(stdout, 1), (stderr, 2)] {
            while let Some(n) = read_some(from, buf) {
                if n == 0 {
                    break;
                }
                let data = buf.split().freeze();
                self.output(stream, data).await;
            }
        }
    }

    /// The interpreter is going (its reply pipe closed, or the engine must kill it): waits
    /// for its exit (killing its group if it lingers), reads what its pipes still hold.
    async fn reap(
        &mut self,
        child: &mut tokio::process::Child,
        stdout: &mut pipe::Receiver,
        stderr: &mut pipe::Receiver,
        why: Option<String>,
    ) -> Death {
        if why.is_some() {
            process::signal_group(self.pgid, rustix::process::Signal::KILL.as_raw());
        }
        let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                process::signal_group(self.pgid, rustix::process::Signal::KILL.as_raw());
                child.wait().await.ok()
            }
        };
        let mut buf = BytesMut::with_capacity(CHUNK);
        self.drain(stdout, stderr, &mut buf).await;
        Death { status, why }
    }
}

/// Reads what a pipe has now: `Some(0)` at end of file, `None` if it would block.
fn read_some(from: &mut pipe::Receiver, buf: &mut BytesMut) -> Option<usize> {
    if buf.capacity() - buf.len() < CHUNK / 4 {
        buf.reserve(CHUNK);
    }
    loop {
        match from.try_read_buf(buf) {
            Ok(n) => return Some(n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(err) => {
                tracing::debug!(%err, "reading an interpreter's pipe failed");
                return Some(0);
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
