//! Streamed stdin (`Execution.Interact`): the bytes a client sends reach every task of its
//! request, in order, with a bounded window in flight per task.
//!
//! The hub takes a chunk from the client only when every task still taking stdin has room for
//! it in its window (`--stdin-window`): bytes taken but not yet written into the task's
//! process, as its engine acknowledges them. So a task that reads slowly holds the client back
//! (its `write` blocks, as over ssh), and the hub never holds more than the window per task.
//! A chunk goes to the task's engine at once if the task is placed, else when it is. The
//! engine acknowledges what it has written; the hub records that as the task's STDIN events
//! (kept within the output cap like output; not for a terminal, where it may be a password
//! typed at a prompt that does not echo it), and lets it go. What is not acknowledged stays
//! here, so an engine that reconnects is sent it again (it skips, by offset, what it already
//! wrote). The end of the client's stdin, or its going away, follows the bytes.
//!
//! A hub that restarts loses this: the engines then cut the stdin of tasks still taking it
//! (their `runner`'s stdin writer), and tasks still queued for it fail (`fail_orphaned_stdin`).

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::v1::{ResizeTask, StdinAck, StdinData, TaskState, WindowSize, hub_message};

use super::{Hub, State};
use crate::error::HubError;
use crate::input::InputHold;
use crate::validate::stdin::MAX_TTY_SIDE;

#[cfg(test)]
#[path = "stdin_tests.rs"]
mod tests;

/// How a client's stdin ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdinEnd {
    /// It sent the end of its stdin.
    Eof,
    /// It went away without ending it.
    Hangup,
}

/// Bytes taken from the client and not yet acknowledged by the engine.
#[derive(Debug)]
struct Pending {
    /// Where they begin in the task's stdin.
    offset: u64,
    data: Bytes,
    /// Their share of the input budget.
    _hold: Option<InputHold>,
}

/// One task's streamed stdin, while a client streams it.
#[derive(Debug)]
pub(super) struct StdinStream {
    /// Bytes taken from the client: the offset of the next.
    taken: u64,
    /// Bytes sent to the engine of the current attempt.
    sent: u64,
    /// Bytes the engine has written into the task.
    written: u64,
    /// From `written` to `taken`, in order.
    unacked: VecDeque<Pending>,
    /// How the client's stdin ended, if it has.
    end: Option<StdinEnd>,
    end_sent: bool,
    /// The task takes no more: its engine closed its stdin, or it ended.
    closed: bool,
    /// Woken when room frees up in this task's window (shared by the request's tasks).
    room: Arc<Notify>,
}

impl StdinStream {
    fn new(room: Arc<Notify>) -> Self {
        Self {
            taken: 0,
            sent: 0,
            written: 0,
            unacked: VecDeque::new(),
            end: None,
            end_sent: false,
            closed: false,
            room,
        }
    }

    /// The task takes no more stdin: what is held goes, and the client need not wait for it.
    pub(super) fn close(&mut self) {
        self.closed = true;
        self.unacked.clear();
        self.room.notify_waiters();
    }

    /// Whether `len` more bytes fit in the window (a chunk larger than the window passes
    /// alone, once nothing else is in flight).
    fn has_room(&self, len: u64, window: u64) -> bool {
        let in_flight = self.taken - self.written;
        in_flight == 0 || in_flight + len <= window
    }

    /// The engine has written `ack.written` bytes into the task (and takes no more if
    /// `closed`): they leave the window, which wakes the client if it waits for room.
    /// Returns them, in order.
    pub(super) fn acked(&mut self, ack: &StdinAck) -> Vec<Bytes> {
        let written = ack.written.min(self.taken);
        let mut given = Vec::new();
        while let Some(front) = self.unacked.front_mut() {
            if front.offset >= written {
                break;
            }
            let end = front.offset + front.data.len() as u64;
            if end <= written {
                if let Some(done) = self.unacked.pop_front() {
                    given.push(done.data);
                }
            } else {
                let cut = (written - front.offset) as usize;
                given.push(front.data.slice(..cut));
                front.data = front.data.slice(cut..);
                front.offset = written;
                break;
            }
        }
        self.written = self.written.max(written);
        if ack.closed {
            self.close();
        } else {
            self.room.notify_waiters();
        }
        given
    }
}

/// What became of a chunk offered to a request's tasks.
enum Taken {
    Yes,
    /// A task's window is full: wait for room.
    Full,
    /// No task takes stdin any more.
    NoOne,
}

impl Hub {
    /// Submits a request whose tasks' stdin the caller streams; returns their ids and what
    /// wakes a caller waiting for room in their windows.
    pub(crate) fn submit_streaming(
        &self,
        mut request: warren_proto::v1::ExecuteRequest,
        submitter: crate::model::Submitter,
    ) -> Result<(Vec<u64>, Arc<Notify>), HubError> {
        if let Some(spec) = request.spec.as_mut() {
            spec.stream_stdin = true;
        }
        let ids = self.submit(request, submitter)?;
        let room = Arc::new(Notify::new());
        self.update(|state| {
            for id in &ids {
                if let Some(task) = state.tasks.get_mut(id)
                    && !task.is_ending()
                {
                    task.stdin = Some(StdinStream::new(room.clone()));
                }
            }
        });
        Ok((ids, room))
    }

    /// Gives `data` to every task of the request that still takes stdin, waiting until each
    /// has room for it. False once no task takes stdin any more (the bytes go nowhere).
    pub(crate) async fn push_stdin(&self, ids: &[u64], room: &Arc<Notify>, data: Bytes) -> bool {
        let window = self.settings.limits.stdin_window;
        loop {
            // Made before looking, so room freed after the look still wakes us.
            let notified = room.clone().notified_owned();
            match self.update(|state| state.take_stdin(ids, &data, window)) {
                Taken::Yes => return true,
                Taken::NoOne => return false,
                Taken::Full => notified.await,
            }
        }
    }

    /// The client's stdin has ended (or the client has gone): each task's stdin ends after
    /// the bytes it was given.
    pub(crate) fn end_stdin(&self, ids: &[u64], end: StdinEnd) {
        self.update(|state| {
            for &id in ids {
                if let Some(stdin) = state.tasks.get_mut(&id).and_then(|t| t.stdin.as_mut())
                    && stdin.end.is_none()
                {
                    stdin.end = Some(end);
                    state.send_stdin(id);
                }
            }
        });
    }

    /// The client's terminal has a new size: tasks with a terminal get it (now if they run,
    /// at their start if they wait).
    pub(crate) fn resize_stdin(&self, ids: &[u64], size: WindowSize) {
        let size = WindowSize {
            rows: size.rows.min(MAX_TTY_SIDE),
            cols: size.cols.min(MAX_TTY_SIDE),
        };
        self.update(|state| {
            for &id in ids {
                let Some(task) = state.tasks.get_mut(&id) else {
                    continue;
                };
                let Some(tty) = task.row.asked.spec.tty.as_mut() else {
                    continue;
                };
                // The spec an assignment carries; the history keeps the size it began with.
                tty.rows = size.rows;
                tty.cols = size.cols;
                if task.is_ending() || task.row.attempt == 0 {
                    continue;
                }
                let on = state
                    .engines
                    .get(task.row.engine_id)
                    .filter(|engine| engine.runs(id));
                if let Some(engine) = on {
                    engine.send(hub_message::Kind::ResizeTask(ResizeTask {
                        task_id: id,
                        attempt: task.row.attempt,
                        size: Some(size),
                    }));
                }
            }
        });
    }
}

impl State {
    /// Offers a chunk to the request's tasks; takes it only if every one has room.
    fn take_stdin(&mut self, ids: &[u64], data: &Bytes, window: u64) -> Taken {
        let len = data.len() as u64;
        let mut taking = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            match &task.stdin {
                Some(stdin) if !stdin.closed && !task.is_ending() => {
                    if !stdin.has_room(len, window) {
                        return Taken::Full;
                    }
                    taking.push(id);
                }
                _ => {}
            }
        }
        if taking.is_empty() {
            return Taken::NoOne;
        }
        for id in taking {
            if let Some(stdin) = self.tasks.get_mut(&id).and_then(|t| t.stdin.as_mut()) {
                stdin.unacked.push_back(Pending {
                    offset: stdin.taken,
                    data: data.clone(),
                    _hold: self.input.hold(len),
                });
                stdin.taken += len;
            }
            self.send_stdin(id);
        }
        Taken::Yes
    }

    /// Sends the task's engine, if it is placed, whatever of its stdin it has not been sent,
    /// then the end once everything before it is.
    fn send_stdin(&mut self, task_id: u64) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let (attempt, engine_id) = (task.row.attempt, task.row.engine_id);
        let Some(stdin) = task.stdin.as_mut() else {
            return;
        };
        let on = self.engines.get(engine_id).filter(|e| e.runs(task_id));
        let Some(engine) = on.filter(|_| attempt > 0 && !stdin.closed) else {
            return;
        };
        for pending in &stdin.unacked {
            let end = pending.offset + pending.data.len() as u64;
            if end <= stdin.sent {
                continue;
            }
            engine.send(hub_message::Kind::StdinData(StdinData {
                task_id,
                attempt,
                offset: pending.offset,
                data: pending.data.clone(),
                eof: false,
                hangup: false,
            }));
        }
        stdin.sent = stdin.taken;
        if let Some(end) = stdin.end
            && !stdin.end_sent
        {
            stdin.end_sent = true;
            engine.send(hub_message::Kind::StdinData(StdinData {
                task_id,
                attempt,
                offset: stdin.taken,
                data: Bytes::new(),
                eof: end == StdinEnd::Eof,
                hangup: end == StdinEnd::Hangup,
            }));
        }
    }

    /// The task was just placed, or its engine came back: it gets again everything of its
    /// stdin it has not acknowledged (an engine skips what it already has).
    pub(super) fn resend_stdin(&mut self, task_id: u64) {
        if let Some(stdin) = self.tasks.get_mut(&task_id).and_then(|t| t.stdin.as_mut()) {
            stdin.sent = stdin.written;
            stdin.end_sent = false;
            self.send_stdin(task_id);
        }
    }

    /// The stdin of every task of an engine that came back is sent again from what it wrote.
    pub(super) fn resend_stdin_of(&mut self, engine_id: u32) {
        let ids: Vec<u64> = self
            .engines
            .get(engine_id)
            .map(|engine| engine.active().iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.resend_stdin(id);
        }
    }

    /// Bytes an acknowledgement would have the hub record (for the output budget).
    pub(super) fn stdin_to_record(&self, ack: &StdinAck) -> u64 {
        let Some(task) = self.tasks.get(&ack.task_id) else {
            return 0;
        };
        match &task.stdin {
            Some(stdin) if task.keeps_stdin() => {
                ack.written.min(stdin.taken).saturating_sub(stdin.written)
            }
            _ => 0,
        }
    }

    /// A queued task recovered after a restart whose stdin a client was streaming: nobody
    /// can give it the rest, so it fails, saying why. True if it did.
    pub(super) fn fail_orphaned_stdin(&mut self, task_id: u64) -> bool {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return false;
        };
        if !task.row.asked.spec.stream_stdin || task.stdin.is_some() || task.is_ending() {
            return false;
        }
        let why = "its stdin was streaming from a client when the hub restarted, and can't be \
                   resumed; run it again (or give the input with --stdin FILE and --detach)";
        let end = task.end(TaskState::Failed, why.to_owned());
        self.write(end);
        true
    }
}
