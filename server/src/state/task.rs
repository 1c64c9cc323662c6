//! A task as the hub holds it while it lives: its row, its log, its attempts, its followers.
//!
//! A change to a task returns the writes it implies for the history ([`Op`]s); the operation
//! that makes the change records them with the state, and they are committed when it ends
//! (`Hub::update`). The in-memory task is dropped once it has ended, its end is committed, and
//! nobody follows it. After that it lives in the history alone.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::now_us;
use warren_proto::v1::{
    Attempt, OutputChunk, OutputStream, StateChange, StdinAck, TaskEvent, TaskInfo, TaskResult,
    TaskState, task_event::Kind,
};

use super::stdin::StdinStream;
use super::tasklog::{LogLimits, Persist, TaskLog};
use crate::input::InputHold;
use crate::model::{Submission, TaskRow};
use crate::store::Op;

/// A live task.
#[derive(Debug)]
pub(super) struct Task {
    /// Its row, as the database has it (state, attempt, result...).
    pub(super) row: TaskRow,
    /// Its events.
    pub(super) log: TaskLog,
    /// Its placements so far.
    pub(super) attempts: Vec<Attempt>,
    /// Engines that died running it; a retry avoids them.
    pub(super) avoid: Vec<u32>,
    /// Engines that died holding it before it was known to start.
    pub(super) unconfirmed_losses: u32,
    /// The highest output chunk received from the engine for the current attempt.
    pub(super) chunk_received: u64,
    /// The highest output chunk the database has, for the current attempt.
    pub(super) chunk_committed: u64,
    /// The final event, built but not shown until the database has it, and the state shown
    /// meanwhile.
    pending_final: Option<(TaskEvent, TaskState)>,
    /// Woken whenever an event is shown, for followers.
    pub(super) notify: Arc<Notify>,
    /// Followers attached now, and where each has read to.
    followers: HashMap<u64, u64>,
    /// The follower the window keeps events for (see `Task::follower_caught_up`).
    lead: Option<u64>,
    /// Output is committed but not acknowledged, because followers lag (see `acks`).
    pub(super) ack_withheld: bool,
    /// Its stdin's share of the input budget, while it has not started.
    pub(super) input: Option<InputHold>,
    /// Its stdin, while a client streams it (`stdin`).
    pub(super) stdin: Option<StdinStream>,
}

impl Task {
    /// A new task, queued (or waiting for its dependencies, saying why), and the writes that
    /// record it and its first event.
    pub(super) fn create(
        id: u64,
        asked: Submission,
        limits: LogLimits,
        waiting: Option<String>,
    ) -> (Self, Vec<Op>) {
        let mut task = Self::resume(TaskRow::queued(id, asked), Vec::new(), limits);
        let mut writes = vec![Op::Task(Box::new(task.snapshot()))];
        let asked = &task.row.asked;
        if !asked.after.is_empty() || !asked.after_ok.is_empty() {
            writes.push(Op::Dependencies {
                task_id: id,
                after: asked.after.clone(),
                after_ok: asked.after_ok.clone(),
            });
        }
        writes.extend(match waiting {
            Some(why) => task.set_state(TaskState::Waiting, why),
            None => task.set_state(TaskState::Queued, String::new()),
        });
        (task, writes)
    }

    /// A task carried on from the database.
    pub(super) fn resume(row: TaskRow, attempts: Vec<Attempt>, limits: LogLimits) -> Self {
        let log = TaskLog::resume(limits, &row.progress);
        let chunk = row.progress.chunk_seq;
        Self {
            row,
            log,
            attempts,
            avoid: Vec::new(),
            unconfirmed_losses: 0,
            chunk_received: chunk,
            chunk_committed: chunk,
            pending_final: None,
            notify: Arc::new(Notify::new()),
            followers: HashMap::new(),
            lead: None,
            ack_withheld: false,
            input: None,
            stdin: None,
        }
    }

    /// Its state as callers see it: final only once the database has the end.
    pub(super) fn state(&self) -> TaskState {
        match &self.pending_final {
            Some((_, shown)) => *shown,
            None => self.row.state,
        }
    }

    /// Whether its end has been decided (even if not yet committed): no more changes.
    pub(super) fn is_ending(&self) -> bool {
        self.row.state.is_final()
    }

    /// The row with current counters, for the database.
    pub(super) fn snapshot(&self) -> TaskRow {
        let mut row = self.row.clone();
        row.progress = self.log.progress(self.row.attempt, self.chunk_received);
        row
    }

    /// Moves to a live state, saying why.
    pub(super) fn set_state(&mut self, state: TaskState, reason: String) -> Vec<Op> {
        self.row.state = state;
        self.row.reason.clone_from(&reason);
        let persist = self.log.append(
            self.row.id,
            self.row.engine_id,
            Kind::State(StateChange {
                state: state as i32,
                reason,
                attempt: self.row.attempt,
            }),
        );
        let mut writes = vec![Op::Task(Box::new(self.snapshot()))];
        if let Persist::Event(event) = persist {
            writes.push(Op::Event {
                task_id: self.row.id,
                event,
                progress: self.log.progress(self.row.attempt, self.chunk_received),
            });
        }
        self.notify.notify_waiters();
        writes
    }

    /// Adds an output chunk; `bytes` of hub memory are released when it is committed.
    pub(super) fn record_output(&mut self, chunk: OutputChunk, chunk_seq: u64, bytes: u64) -> Op {
        self.chunk_received = self.chunk_received.max(chunk_seq);
        self.append_output(chunk, bytes)
    }

    /// Appends bytes to the task's log (an event, or a gap past the cap) and wakes followers.
    pub(super) fn append_output(&mut self, chunk: OutputChunk, bytes: u64) -> Op {
        let persist = self
            .log
            .append(self.row.id, self.row.engine_id, Kind::Output(chunk));
        let (event, gap) = match persist {
            Persist::Event(event) => (Some(event), None),
            Persist::Gap(gap) => (None, Some(gap)),
        };
        self.notify.notify_waiters();
        Op::Output {
            task_id: self.row.id,
            event,
            gap,
            progress: self.log.progress(self.row.attempt, self.chunk_received),
            bytes,
        }
    }

    /// The engine has written `ack.written` bytes into the task (and takes no more if
    /// `closed`): what it wrote is recorded and let go. `budget` bytes of the output budget
    /// were taken for the recording; returns the writes and whether the hub holds them now.
    pub(super) fn stdin_acked(&mut self, ack: &StdinAck, budget: u64) -> (Vec<Op>, bool) {
        let Some(stdin) = self.stdin.as_mut() else {
            return (Vec::new(), false);
        };
        let given = stdin.acked(ack);
        if !self.keeps_stdin() {
            return (Vec::new(), false);
        }
        let held = budget > 0 && !given.is_empty();
        let mut budget = budget;
        let writes = given
            .into_iter()
            .map(|data| self.record_stdin(data, std::mem::take(&mut budget)))
            .collect();
        (writes, held)
    }

    /// Whether what the task is given is kept in its history: not what is typed at a
    /// terminal, which may be a password typed at a prompt that does not echo it.
    pub(super) fn keeps_stdin(&self) -> bool {
        self.row.asked.spec.tty.is_none()
    }

    /// Records stdin the task was given as a STDIN event (kept within the output cap).
    fn record_stdin(&mut self, data: Bytes, bytes: u64) -> Op {
        let chunk = OutputChunk {
            stream: OutputStream::Stdin as i32,
            data,
        };
        self.append_output(chunk, bytes)
    }

    /// Decides the task's end; it is shown when the database has it. Later calls do nothing.
    pub(super) fn finish(&mut self, mut result: TaskResult) -> Option<Op> {
        if self.is_ending() {
            return None;
        }
        self.input = None;
        if let Some(stdin) = &mut self.stdin {
            stdin.close();
        }
        result.attempt = self.row.attempt;
        let shown = self.row.state;
        self.row.state = result.state();
        self.row.reason.clone_from(&result.error);
        self.row.result = Some(result.clone());
        let event = self
            .log
            .prepare_final(self.row.id, self.row.engine_id, Kind::Result(result));
        self.pending_final = Some((event.clone(), shown));
        Some(Op::Finish {
            event,
            row: Box::new(self.snapshot()),
        })
    }

    /// Ends the task without its process having ended on its own (aborted, lost, failed).
    pub(super) fn end(&mut self, state: TaskState, error: String) -> Option<Op> {
        self.finish(TaskResult {
            state: state as i32,
            exit: None,
            error,
            started_us: self.row.started_us,
            finished_us: now_us(),
            attempt: self.row.attempt,
            ..Default::default()
        })
    }

    /// The database has the end: show it to followers.
    pub(super) fn publish_final(&mut self) {
        if let Some((event, _)) = self.pending_final.take() {
            self.log.publish(event);
            self.notify.notify_waiters();
        }
    }

    /// Whether its end is decided but not yet committed (and so not shown).
    pub(super) fn end_pending(&self) -> bool {
        self.pending_final.is_some()
    }

    /// Whether the task has ended, its end is shown, and nobody follows it: it can leave memory.
    pub(super) fn is_done_with(&self) -> bool {
        self.row.state.is_final() && self.pending_final.is_none() && self.followers.is_empty()
    }

    /// How many followers it has now.
    pub(super) fn follower_count(&self) -> usize {
        self.followers.len()
    }

    /// A follower has read up to `cursor` (or left, with `None`). The first follower leads;
    /// when the lead leaves, the most advanced of the others does.
    pub(super) fn follower_at(&mut self, follower: u64, cursor: Option<u64>) {
        match cursor {
            Some(cursor) => {
                self.followers.insert(follower, cursor);
                self.lead.get_or_insert(follower);
            }
            None => {
                self.followers.remove(&follower);
                if self.lead == Some(follower) {
                    self.lead = self
                        .followers
                        .iter()
                        .max_by_key(|&(_, cursor)| cursor)
                        .map(|(&id, _)| id);
                }
            }
        }
        self.show_lead();
    }

    /// A follower has read everything shown and waits for more. If the window is over its
    /// size, its lead is slower than this follower, which takes the lead: the lead passes
    /// only this way, never to a follower that is merely ahead for a moment (one that took a
    /// batch while the lead was sending its own), so the lead never loses events it has not
    /// read to a slower follower. Says whether the lead changed.
    pub(super) fn follower_caught_up(&mut self, follower: u64) -> bool {
        if self.lead == Some(follower) || !self.log.backlogged() {
            return false;
        }
        self.lead = Some(follower);
        self.show_lead();
        true
    }

    fn show_lead(&mut self) {
        let cursor = self.lead.and_then(|id| self.followers.get(&id).copied());
        self.log.set_lead(cursor);
    }

    /// Records a new placement on an engine.
    pub(super) fn begin_attempt(&mut self, engine_id: u32, uuid: &str, hostname: &str) -> [Op; 2] {
        self.row.attempt += 1;
        self.row.engine_id = engine_id;
        self.row.started_us = 0;
        self.chunk_received = 0;
        self.chunk_committed = 0;
        let attempt = Attempt {
            number: self.row.attempt,
            engine_id,
            engine_uuid: uuid.to_owned(),
            hostname: hostname.to_owned(),
            assigned_us: now_us(),
            ended_us: 0,
            outcome: String::new(),
        };
        let recorded = Op::Attempt {
            task_id: self.row.id,
            attempt: attempt.clone(),
        };
        self.attempts.push(attempt);
        [recorded, Op::Task(Box::new(self.snapshot()))]
    }

    /// Records how the current attempt ended.
    pub(super) fn end_attempt(&mut self, outcome: &str) -> Option<Op> {
        let number = self.row.attempt;
        let attempt = self.attempts.iter_mut().find(|a| a.number == number)?;
        attempt.ended_us = now_us();
        attempt.outcome = outcome.to_owned();
        Some(Op::Attempt {
            task_id: self.row.id,
            attempt: attempt.clone(),
        })
    }

    /// The task as `GetTask` and `ListTasks` show it.
    pub(super) fn info(&self) -> TaskInfo {
        let mut info = self.snapshot().info(self.attempts.clone());
        if let Some((_, shown)) = &self.pending_final {
            info.state = *shown as i32;
            info.result = None;
            info.next_seq = self.log.next_seq() - 1;
        }
        info
    }
}
