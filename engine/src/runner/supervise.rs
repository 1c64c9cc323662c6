//! One task's runner: its process, its output pumps, its timeout, and the signals sent to it.
//! The pumps (and the writer of the task's stdin) belong to the runner: it waits for them,
//! a bounded time, and whatever is left when it returns, or panics, is stopped with it.

use bytes::BytesMut;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;
use warren_proto::now_us;
use warren_proto::os::signals;
use warren_proto::v1::{OutputStream, TaskResult, TaskSpec, TaskStarted, TaskState, task_result};

use super::Run;
use super::interactive::{self, Sink};
use super::pipes::OutputPipes;
use crate::config::OUTPUT_DRAIN;
use crate::control::Control;
use crate::process;
use crate::pty;

/// Bytes read from a pipe at most per output chunk; a pipe that fills up is made this big too, so
/// a task that writes fast is read in few, large chunks (fewer messages to frame, send and
/// store), while a slow one is still read as soon as it writes.
const CHUNK: usize = 1 << 20;

/// A pipe's size as the kernel makes it. A read of half of it or more found the writer ahead
/// of the engine (a pipe full of odd-sized writes holds less than all of it), and the pipe is
/// grown to [`CHUNK`] then. Most tasks never come close, and a grown pipe costs the kernel an
/// allocation when it is made and when it is closed.
const PIPE_DEFAULT: usize = 64 << 10;

/// The signals by which others stop a process: a task that dies of one the engine did not
/// send (or exits with 128 + one, as a shell reports it) was most likely stopped with its
/// engine, all at once (Slurm's scancel and time limit signal every process of a job).
const OUTSIDE_KILLS: [i32; 4] = [1, 2, 9, 15];

/// How long a task's start (and its output) waits before the hub is told: most short tasks
/// end within it, and their start, output and end then go in one batch. A person watching
/// never sees the difference; the hub, the database and a following client do one round of
/// work instead of two, and not while the process itself needs the CPU.
const QUIET_START: Duration = Duration::from_millis(2);

/// The runner's timings.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    /// Between SIGTERM and SIGKILL when the engine ends the task.
    pub(super) grace: Duration,
    /// How long the end of a task killed from outside is held back: if the engine is being
    /// stopped by the same signal, it says goodbye first and the hub settles the task as
    /// lost with its engine (retried when allowed) rather than failed by a signal.
    pub(super) outside_kill_hold: Duration,
}

/// Runs a task (which must already be in the tasks) to its end and reports it.
pub(super) async fn supervise(
    run: Run,
    spec: TaskSpec,
    timing: Timing,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let grace = timing.grace;
    let (task_id, attempt) = (run.task_id, run.attempt);
    let started_us = now_us();
    let mut terminal: Option<Arc<pty::Master>> = None;
    let mut output: Option<OutputPipes> = None;
    let spawned = process::command(task_id, &spec).and_then(|mut command| {
        if let Some(tty) = &spec.tty {
            let master = pty::Pty::open(tty.rows, tty.cols)
                .and_then(|pty| pty.attach(&mut command, &tty.term))
                .map_err(|err| process::StartError {
                    exit_code: process::EXIT_CANNOT_RUN,
                    reason: format!("cannot give the task a terminal: {err}"),
                })?;
            terminal = Some(Arc::new(master));
        } else {
            let pipes = OutputPipes::attach(&mut command).map_err(|err| process::StartError {
                exit_code: process::EXIT_CANNOT_RUN,
                reason: format!("cannot make the pipes for the task's output: {err}"),
            })?;
            output = Some(pipes);
        }
        command
            .spawn()
            .map_err(|err| process::StartError::from_spawn(process::program(&spec), &err))
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(failed) => {
            tracing::info!(reason = %failed.reason, "task could not start");
            let result = TaskResult {
                state: TaskState::Failed as i32,
                exit: Some(task_result::Exit::ExitCode(failed.exit_code)),
                error: failed.reason,
                started_us: 0,
                finished_us: now_us(),
                attempt,
                ..Default::default()
            };
            run.tasks.finished(task_id, attempt, result);
            return;
        }
    };
    let pgid = child.id().unwrap_or(0);
    let mut announce_at = Some(Instant::now() + QUIET_START);
    run.tasks.started_quietly(
        task_id,
        attempt,
        TaskStarted {
            task_id,
            pid: pgid,
            started_us,
            attempt,
        },
    );

    // The task's stdin writer and output pumps.
    let mut pipes = JoinSet::new();
    let mut feed = None;
    let mut feeder = None;
    if spec.stream_stdin {
        let sink = match (&terminal, child.stdin.take()) {
            (Some(master), _) => Some(Sink::Tty(master.clone())),
            (None, Some(pipe)) => {
                let _ = rustix::pipe::fcntl_setpipe_size(&pipe, CHUNK);
                Some(Sink::Pipe(pipe))
            }
            (None, None) => None,
        };
        if let Some(sink) = sink {
            let (tx, rx) = mpsc::unbounded_channel();
            feed = Some(tx);
            run.tasks.stdin_progress(task_id, attempt, 0, false);
            let writer = interactive::feed(sink, rx, run.clone(), pgid);
            feeder = Some(pipes.spawn(writer.in_current_span()));
        }
    } else if let Some(mut stdin) = child.stdin.take() {
        let bytes = spec.stdin.clone();
        // A task that exits without reading its stdin is not an error.
        pipes.spawn(
            async move {
                let _ = stdin.write_all(&bytes).await;
            }
            .in_current_span(),
        );
    }
    if let Some(master) = &terminal {
        pipes.spawn(interactive::pump_tty(master.clone(), run.clone()).in_current_span());
    }
    let task_ends = output.map(|output| {
        pipes.spawn(pump(output.stdout, OutputStream::Stdout, run.clone()).in_current_span());
        pipes.spawn(pump(output.stderr, OutputStream::Stderr, run.clone()).in_current_span());
        output.task_ends
    });
    #[cfg(test)]
    if spec.env.contains_key(super::tests::PANIC_HOOK) {
        panic!("asked to by the test hook");
    }

    let limit = spec.timeout_ms.map(Duration::from_millis);
    let deadline = limit.map(|limit| Instant::now() + limit);
    let mut ending: Option<(TaskState, String)> = None;
    let mut discarded = false;
    // Whether a signal was sent at the hub's request (`warren interrupt`).
    let mut signalled = false;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = sleep_until(announce_at) => {
                run.tasks.announce(task_id, attempt);
                announce_at = None;
            }
            () = sleep_until(deadline), if ending.is_none() => {
                let why = format!("timed out after {:?}", limit.unwrap_or_default());
                terminate(&mut ending, &mut kill_at, (pgid, grace), TaskState::TimedOut, why);
            }
            () = sleep_until(kill_at) => {
                process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
                kill_at = None;
            }
            request = control.recv(), if !discarded => match request {
                Some(Control::Signal(signal)) => {
                    signalled = true;
                    process::signal_group(pgid, signal);
                }
                Some(Control::Cancel) => {
                    let why = "aborted while running".to_owned();
                    terminate(&mut ending, &mut kill_at, (pgid, grace), TaskState::Aborted, why);
                }
                Some(Control::Stop(why)) => {
                    terminate(&mut ending, &mut kill_at, (pgid, grace), TaskState::Aborted, why);
                }
                Some(Control::Discard) | None => {
                    // Nobody wants this attempt any more: no grace.
                    discarded = true;
                    process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
                }
                Some(Control::Stdin(chunk)) => {
                    if let Some(feed) = &feed {
                        let _ = feed.send(chunk);
                    }
                }
                Some(Control::Resize(size)) => {
                    if let Some(master) = &terminal
                        && let Err(err) = master.resize(size.rows, size.cols)
                    {
                        tracing::debug!(%err, "cannot resize the task's terminal");
                    }
                }
                Some(Control::CutStdin(why)) => {
                    if let Some(writer) = feeder.take() {
                        // The hangup first, as a terminal's goes: a task must not see the end
                        // of its stdin before it, and exit as if its input had just ended.
                        interactive::hang_up(&mut ending, &mut kill_at, (pgid, grace), why);
                        writer.abort();
                        feed = None;
                        run.tasks.stdin_progress(task_id, attempt, 0, true);
                    }
                }
            },
        }
    };
    if announce_at.is_some_and(|at| Instant::now() >= at) {
        // Its output may take a while to drain (a process outside its group holding a pipe).
        run.tasks.announce(task_id, attempt);
    }
    // The feeder ends with what it was given.
    drop(feed);
    // The pipes end once nothing the task started holds them any more.
    drop(task_ends);
    // Nothing the task started outlives it.
    process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
    let drained = tokio::time::timeout(OUTPUT_DRAIN, async {
        while let Some(ended) = pipes.join_next().await {
            if let Err(err) = ended
                && err.is_panic()
            {
                // Output may be lost: the runner fails with it (see `Runners`).
                std::panic::resume_unwind(err.into_panic());
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("a process outside the task's group kept its output open; stopped reading");
        pipes.shutdown().await;
    }
    if !discarded
        && ending.is_none()
        && !signalled
        && status.as_ref().is_ok_and(killed_from_outside)
    {
        // The end waits; its start and output do not.
        run.tasks.announce(task_id, attempt);
        // Whatever the engine is asked meanwhile (to stop, to drop the task) ends the hold.
        tokio::select! {
            () = tokio::time::sleep(timing.outside_kill_hold) => {}
            request = control.recv() => {
                discarded = matches!(request, Some(Control::Discard) | None);
            }
        }
    }
    if discarded {
        return;
    }
    let mut result = match status {
        Ok(status) => result_of(status, ending, started_us),
        Err(err) => TaskResult {
            state: TaskState::Failed as i32,
            exit: None,
            error: format!("cannot wait for the task's process: {err}"),
            started_us,
            finished_us: now_us(),
            attempt,
            ..Default::default()
        },
    };
    result.attempt = attempt;
    run.tasks.finished(task_id, attempt, result);
}

/// Whether the process died of a signal others stop processes with (or a shell said so).
fn killed_from_outside(status: &ExitStatus) -> bool {
    match (status.signal(), status.code()) {
        (Some(signal), _) => OUTSIDE_KILLS.contains(&signal),
        (None, Some(code)) => OUTSIDE_KILLS.iter().any(|signal| code == 128 + signal),
        (None, None) => false,
    }
}

/// Begins ending a task (once): SIGTERM now, SIGKILL after the grace period.
fn terminate(
    ending: &mut Option<(TaskState, String)>,
    kill_at: &mut Option<Instant>,
    (pgid, grace): (u32, Duration),
    state: TaskState,
    why: String,
) {
    if ending.is_none() {
        *ending = Some((state, why));
        process::signal_group(pgid, rustix::process::Signal::TERM.as_raw());
        *kill_at = Some(Instant::now() + grace);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Streams one pipe to the hub as it is written, a chunk per read, without copying; a pipe
/// whose writer is ahead is grown to [`CHUNK`].
async fn pump(mut reader: impl AsyncRead + AsFd + Unpin, stream: OutputStream, run: Run) {
    let mut buffer = BytesMut::with_capacity(CHUNK);
    let mut grown = false;
    loop {
        if buffer.capacity() < CHUNK / 4 {
            buffer.reserve(CHUNK);
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => {
                grow_if_writer_ahead(reader.as_fd(), read, &mut grown);
                let data = buffer.split().freeze();
                if !run
                    .tasks
                    .output(run.task_id, run.attempt, stream as i32, data)
                    .await
                {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(%err, "reading the task's output failed");
                return;
            }
        }
    }
}

/// Grows a pipe to [`CHUNK`], once, when a read of `read` bytes shows its writer ahead.
pub(super) fn grow_if_writer_ahead(pipe: BorrowedFd<'_>, read: usize, grown: &mut bool) {
    if read >= PIPE_DEFAULT / 2 && !*grown {
        // The kernel may cap it (/proc/sys/fs/pipe-max-size); the default still works.
        let _ = rustix::pipe::fcntl_setpipe_size(pipe, CHUNK);
        *grown = true;
    }
}

/// The task's result from how its process ended and why the engine ended it, if it did.
fn result_of(
    status: ExitStatus,
    ending: Option<(TaskState, String)>,
    started_us: i64,
) -> TaskResult {
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Some(task_result::Exit::ExitCode(code)),
        (None, Some(signal)) => Some(task_result::Exit::Signal(signal)),
        (None, None) => None,
    };
    let (state, error) = match (ending, exit) {
        (Some((state, why)), _) => (state, why),
        (None, Some(task_result::Exit::ExitCode(0))) => (TaskState::Succeeded, String::new()),
        (None, Some(task_result::Exit::ExitCode(code))) => {
            (TaskState::Failed, format!("exited with status {code}"))
        }
        (None, Some(task_result::Exit::Signal(signal))) => (
            TaskState::Failed,
            format!("killed by {}", signals::describe(signal)),
        ),
        (None, None) => (TaskState::Failed, "ended in an unknown way".to_owned()),
    };
    TaskResult {
        state: state as i32,
        exit,
        error,
        started_us,
        finished_us: now_us(),
        attempt: 0,
        ..Default::default()
    }
}
