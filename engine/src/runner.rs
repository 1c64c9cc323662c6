//! Running one task: its process, its output pumps, its timeout, and the signals sent to it.

use bytes::BytesMut;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren_proto::v1::{
    EngineMessage, OutputStream, TaskFinished, TaskOutput, TaskResult, TaskSpec, TaskStarted,
    TaskState, engine_message, task_result,
};
use warren_proto::{now_us, signals};

use crate::process;

/// Bytes read from a pipe at most per output chunk.
const CHUNK: usize = 64 * 1024;
/// How long output may keep flowing after the task's process group is gone (a process that
/// escaped the group may hold a pipe open).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What the engine may ask of a running task.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Send this signal to the task's process group.
    Signal(i32),
    /// Stop it: SIGTERM, then SIGKILL after the grace period; it ends ABORTED.
    Cancel,
}

/// A task being run: the handle the engine keeps to steer it.
#[derive(Debug)]
pub struct RunningTask {
    control: mpsc::UnboundedSender<Control>,
}

impl RunningTask {
    /// Asks the task to do something; a task that has ended ignores it.
    pub fn send(&self, control: Control) {
        let _ = self.control.send(control);
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.control.is_closed()
    }
}

/// Starts a task; its messages (started, output, finished) go to `out`, in order.
pub fn start(
    task_id: u64,
    spec: TaskSpec,
    out: mpsc::Sender<EngineMessage>,
    grace: Duration,
) -> RunningTask {
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(task_id, spec, out, grace, control_rx));
    RunningTask { control }
}

fn message(kind: engine_message::Kind) -> EngineMessage {
    EngineMessage { kind: Some(kind) }
}

async fn run(
    task_id: u64,
    spec: TaskSpec,
    out: mpsc::Sender<EngineMessage>,
    grace: Duration,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let started_us = now_us();
    let spawned = process::command(&spec).and_then(|mut command| {
        command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", program_name(&spec)))
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            tracing::info!(task = task_id, %error, "task could not start");
            let result = TaskResult {
                state: TaskState::Failed as i32,
                exit: None,
                error,
                started_us: 0,
                finished_us: now_us(),
            };
            let _ = out.send(finished(task_id, result)).await;
            return;
        }
    };
    let pgid = child.id().unwrap_or(0);
    let _ = out
        .send(message(engine_message::Kind::Started(TaskStarted {
            task_id,
            pid: pgid,
            started_us,
        })))
        .await;

    if let Some(mut stdin) = child.stdin.take() {
        let bytes = spec.stdin.clone();
        // A task that exits without reading its stdin is not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
        });
    }
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            stdout,
            OutputStream::Stdout,
            task_id,
            out.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            stderr,
            OutputStream::Stderr,
            task_id,
            out.clone(),
        )));
    }

    let deadline =
        (spec.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(spec.timeout_ms));
    let mut ending: Option<(TaskState, String)> = None;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = sleep_until(deadline), if ending.is_none() => {
                let limit = Duration::from_millis(spec.timeout_ms);
                ending = Some((TaskState::TimedOut, format!("timed out after {limit:?}")));
                process::signal_group(pgid, rustix::process::Signal::TERM.as_raw());
                kill_at = Some(Instant::now() + grace);
            }
            () = sleep_until(kill_at) => {
                process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
                kill_at = None;
            }
            Some(request) = control.recv() => match request {
                Control::Signal(signal) => process::signal_group(pgid, signal),
                Control::Cancel if ending.is_none() => {
                    ending = Some((TaskState::Aborted, "aborted while running".to_owned()));
                    process::signal_group(pgid, rustix::process::Signal::TERM.as_raw());
                    kill_at = Some(Instant::now() + grace);
                }
                Control::Cancel => {}
            },
        }
    };
    // Nothing the task started outlives it.
    process::signal_group(pgid, rustix::process::Signal::KILL.as_raw());
    for pump in pumps {
        if tokio::time::timeout(DRAIN_LIMIT, pump).await.is_err() {
            tracing::warn!(
                task = task_id,
                "a process outside the task's group kept its output open; stopped reading"
            );
        }
    }
    let result = match status {
        Ok(status) => result_of(status, ending, started_us),
        Err(err) => TaskResult {
            state: TaskState::Failed as i32,
            exit: None,
            error: format!("cannot wait for the task's process: {err}"),
            started_us,
            finished_us: now_us(),
        },
    };
    let _ = out.send(finished(task_id, result)).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn finished(task_id: u64, result: TaskResult) -> EngineMessage {
    message(engine_message::Kind::Finished(TaskFinished {
        task_id,
        result: Some(result),
    }))
}

fn program_name(spec: &TaskSpec) -> String {
    match &spec.command {
        Some(warren_proto::v1::task_spec::Command::Argv(argv)) => {
            format!("`{}`", argv.args.first().map_or("", String::as_str))
        }
        _ => "`sh`".to_owned(),
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
    }
}

/// Streams one pipe to the hub as it is written, a chunk per read, without copying.
async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: OutputStream,
    task_id: u64,
    out: mpsc::Sender<EngineMessage>,
) {
    let mut buffer = BytesMut::with_capacity(CHUNK);
    loop {
        if buffer.capacity() < CHUNK / 4 {
            buffer.reserve(CHUNK);
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return,
            Ok(_) => {
                let output = TaskOutput {
                    task_id,
                    stream: stream as i32,
                    data: buffer.split().freeze(),
                };
                if out
                    .send(message(engine_message::Kind::Output(output)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(task = task_id, %err, "reading the task's output failed");
                return;
            }
        }
    }
}
