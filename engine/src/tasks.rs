//! The engine's tasks, shared by the runners that produce their output and the session that
//! sends it. They outlive any one connection to the hub.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{Notify, mpsc};
use warren_proto::v1::{
    EngineMessage, TaskFinished, TaskOutput, TaskReport, TaskResult, TaskStarted, engine_message,
};

use crate::outbox::{Outbox, Pushed};
use crate::runner::Control;

/// One task the engine has.
#[derive(Debug)]
struct Entry {
    attempt: u32,
    control: mpsc::UnboundedSender<Control>,
    started: Option<TaskStarted>,
    finished: Option<TaskResult>,
    outbox: Outbox,
    /// What this session has sent: chunks up to `sent`, and whether the start and end.
    sent: u64,
    started_sent: bool,
    finished_sent: bool,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: BTreeMap<u64, Entry>,
    connected: bool,
}

/// The engine's tasks and their unacknowledged output.
#[derive(Debug)]
pub struct Tasks {
    inner: Mutex<Inner>,
    /// Woken when there is something new to send.
    pub changed: Notify,
    /// Woken when output has room again (acknowledged, or the hub went away).
    room: Notify,
    memory_limit: usize,
    spill_dir: PathBuf,
}

impl Tasks {
    /// No tasks yet; each may hold `memory_limit` bytes of output, then spills to `spill_dir`.
    pub fn new(memory_limit: usize, spill_dir: PathBuf) -> Self {
        Self {
            inner: Mutex::default(),
            changed: Notify::new(),
            room: Notify::new(),
            memory_limit,
            spill_dir,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the engine has this task in this attempt.
    pub fn has(&self, task_id: u64, attempt: u32) -> bool {
        self.lock()
            .tasks
            .get(&task_id)
            .is_some_and(|e| e.attempt == attempt)
    }

    /// Takes a new task; an older attempt of it is discarded.
    pub fn add(&self, task_id: u64, attempt: u32, control: mpsc::UnboundedSender<Control>) {
        let outbox = Outbox::new(
            self.memory_limit,
            self.spill_dir
                .join(format!("task-{task_id}-{attempt}.spill")),
        );
        let old = self.lock().tasks.insert(
            task_id,
            Entry {
                attempt,
                control,
                started: None,
                finished: None,
                outbox,
                sent: 0,
                started_sent: false,
                finished_sent: false,
            },
        );
        if let Some(old) = old {
            let _ = old.control.send(Control::Discard);
        }
    }

    /// Sends something to a task's runner.
    pub fn control(&self, task_id: u64, control: Control) {
        if let Some(entry) = self.lock().tasks.get(&task_id) {
            let _ = entry.control.send(control);
        }
    }

    /// Asks every runner to stop its task.
    pub fn stop_all(&self, reason: &str) {
        for entry in self.lock().tasks.values() {
            let _ = entry.control.send(Control::Stop(reason.to_owned()));
        }
    }

    /// Kills a task and forgets it without a word to the hub (which has written it off).
    pub fn discard(&self, task_id: u64, attempt: u32) {
        let mut inner = self.lock();
        let ours = inner
            .tasks
            .get(&task_id)
            .is_some_and(|e| e.attempt == attempt);
        if ours && let Some(entry) = inner.tasks.remove(&task_id) {
            let _ = entry.control.send(Control::Discard);
        }
        drop(inner);
        self.room.notify_waiters();
    }

    /// The task's process started.
    pub fn started(&self, task_id: u64, attempt: u32, started: TaskStarted) {
        if let Some(entry) = self
            .lock()
            .tasks
            .get_mut(&task_id)
            .filter(|e| e.attempt == attempt)
        {
            entry.started = Some(started);
        }
        self.changed.notify_one();
    }

    /// Adds output, waiting while memory is full and the hub connected. False if the task
    /// has been discarded.
    pub async fn output(&self, task_id: u64, attempt: u32, stream: i32, data: Bytes) -> bool {
        loop {
            let room = self.room.notified();
            {
                let mut inner = self.lock();
                let spill = !inner.connected;
                let Some(entry) = inner
                    .tasks
                    .get_mut(&task_id)
                    .filter(|e| e.attempt == attempt)
                else {
                    return false;
                };
                match entry.outbox.push(stream, data.clone(), spill) {
                    Ok(Pushed::Taken) => {
                        drop(inner);
                        self.changed.notify_one();
                        return true;
                    }
                    Ok(Pushed::Full) => {}
                    Err(err) => {
                        // Without the spill file the output can't be kept; waiting for the hub
                        // (backpressure) is the only way to lose nothing.
                        tracing::warn!(task = task_id, %err, "cannot spill output; waiting for the hub");
                    }
                }
            }
            room.await;
        }
    }

    /// The task's process ended.
    pub fn finished(&self, task_id: u64, attempt: u32, result: TaskResult) {
        if let Some(entry) = self
            .lock()
            .tasks
            .get_mut(&task_id)
            .filter(|e| e.attempt == attempt)
        {
            entry.finished = Some(result);
        }
        self.changed.notify_one();
    }

    /// The hub has made output (and perhaps the end) of a task safe.
    pub fn ack(&self, task_id: u64, attempt: u32, chunk_seq: u64, finished: bool) {
        let mut inner = self.lock();
        if let Some(entry) = inner
            .tasks
            .get_mut(&task_id)
            .filter(|e| e.attempt == attempt)
        {
            if let Err(err) = entry.outbox.ack(chunk_seq) {
                tracing::warn!(task = task_id, %err, "cannot read back spilled output");
            }
            entry.sent = entry.sent.max(chunk_seq);
            if finished && entry.finished.is_some() {
                inner.tasks.remove(&task_id);
            }
        }
        drop(inner);
        self.room.notify_waiters();
        self.changed.notify_one();
    }

    /// Whether the hub is connected (output waits) or not (output spills).
    pub fn set_connected(&self, connected: bool) {
        self.lock().connected = connected;
        self.room.notify_waiters();
    }

    /// Starts a session: everything not acknowledged will be sent again; returns what to
    /// report in Hello.
    pub fn begin_session(&self) -> Vec<TaskReport> {
        let mut inner = self.lock();
        inner
            .tasks
            .iter_mut()
            .map(|(&task_id, entry)| {
                entry.sent = entry.outbox.acked();
                entry.started_sent = false;
                entry.finished_sent = false;
                TaskReport {
                    task_id,
                    attempt: entry.attempt,
                    finished: entry.finished.is_some(),
                    chunks: entry.outbox.produced(),
                }
            })
            .collect()
    }

    /// Up to `max` messages to send now, in order per task: start, output, end.
    pub fn next_messages(&self, max: usize) -> Vec<EngineMessage> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for (&task_id, entry) in inner.tasks.iter_mut() {
            if out.len() >= max {
                break;
            }
            let attempt = entry.attempt;
            if let Some(started) = &entry.started
                && !entry.started_sent
            {
                entry.started_sent = true;
                out.push(message(engine_message::Kind::Started(*started)));
            }
            for chunk in entry
                .outbox
                .after(entry.sent)
                .take(max.saturating_sub(out.len()))
            {
                out.push(message(engine_message::Kind::Output(TaskOutput {
                    task_id,
                    stream: chunk.stream,
                    data: chunk.data.clone(),
                    attempt,
                    chunk_seq: chunk.seq,
                })));
                entry.sent = chunk.seq;
            }
            let all_sent = entry.sent >= entry.outbox.produced();
            if let Some(result) = &entry.finished
                && all_sent
                && !entry.finished_sent
                && out.len() < max
            {
                entry.finished_sent = true;
                out.push(message(engine_message::Kind::Finished(TaskFinished {
                    task_id,
                    result: Some(result.clone()),
                    attempt,
                    chunks: entry.outbox.produced(),
                })));
            }
        }
        out
    }

    /// How many tasks the engine still has (running, or ended and not yet acknowledged).
    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of its tasks are still running.
    pub fn running(&self) -> usize {
        self.lock()
            .tasks
            .values()
            .filter(|e| e.finished.is_none())
            .count()
    }
}

fn message(kind: engine_message::Kind) -> EngineMessage {
    EngineMessage { kind: Some(kind) }
}
