//! A task as the hub holds it while it lives: its row, its log, its attempts, its followers.
//!
//! Every change goes to the database through [`Store`]; the in-memory task is dropped once it
//! has ended, its end is committed, and nobody follows it. After that it lives in the
//! database alone.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use warren_proto::now_us;
use warren_proto::v1::{
    Ack, Attempt, OutputChunk, StateChange, TaskEvent, TaskInfo, TaskResult, TaskSpec, TaskState,
    task_event::Kind,
};

use crate::input::InputHold;
use crate::state::tasklog::{LogLimits, Persist, TaskLog};
use crate::store::{Op, Progress, Store, TaskRow};

/// Who submitted a task, from the socket's peer credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Submitter {
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid.
    pub pid: u32,
}

/// What a new task is.
#[derive(Debug)]
pub struct NewTask {
    /// What it runs.
    pub spec: TaskSpec,
    /// The engine the request named, if any.
    pub pinned: Option<u32>,
    /// Labels an engine must have.
    pub engine_labels: HashMap<String, String>,
    /// Its own labels.
    pub labels: HashMap<String, String>,
    /// Retries allowed if its engine dies.
    pub retries: u32,
    /// Who submitted it.
    pub submitter: Submitter,
}

/// A live task.
#[derive(Debug)]
pub struct Task {
    /// Its row, as the database has it (state, attempt, result...).
    pub row: TaskRow,
    /// Its events.
    pub log: TaskLog,
    /// Its placements so far.
    pub attempts: Vec<Attempt>,
    /// Engines that died running it; a retry avoids them.
    pub avoid: Vec<u32>,
    /// Engines that died holding it before it was known to start.
    pub unconfirmed_losses: u32,
    /// The highest output chunk received from the engine for the current attempt.
    pub chunk_received: u64,
    /// The highest output chunk the database has, for the current attempt.
    pub chunk_committed: u64,
    /// The final event, built but not shown until the database has it, and the state shown
    /// meanwhile.
    pending_final: Option<(TaskEvent, TaskState)>,
    /// Woken whenever an event is shown, for followers.
    pub notify: Arc<Notify>,
    /// Followers attached now, and where each has read to.
    pub followers: HashMap<u64, u64>,
    /// Output is committed but not acknowledged, because followers lag (see
    /// [`TaskLog::set_lead`]).
    pub ack_withheld: bool,
    /// Its stdin's share of the input budget, while it has not started.
    pub input: Option<InputHold>,
}

impl Task {
    /// A new queued task; records it and its first event.
    pub fn create(id: u64, new: NewTask, limits: LogLimits, store: &Store) -> Self {
        let row = TaskRow {
            id,
            spec: new.spec,
            pinned: new.pinned,
            engine_labels: new.engine_labels,
            labels: new.labels,
            retries: new.retries,
            submitter: new.submitter,
            submitted_us: now_us(),
            state: TaskState::Queued,
            reason: String::new(),
            engine_id: new.pinned.unwrap_or(0),
            attempt: 0,
            engine_deaths: 0,
            started_us: 0,
            result: None,
            progress: Progress::default(),
        };
        let mut task = Self::resume(row, Vec::new(), limits);
        store.send(Op::Task(Box::new(task.snapshot())));
        task.set_state(TaskState::Queued, String::new(), store);
        task
    }

    /// A task carried on from the database.
    pub fn resume(row: TaskRow, attempts: Vec<Attempt>, limits: LogLimits) -> Self {
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
            ack_withheld: false,
            input: None,
        }
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.row.id
    }

    /// Its state as callers see it: final only once the database has the end.
    pub fn state(&self) -> TaskState {
        match &self.pending_final {
            Some((_, shown)) => *shown,
            None => self.row.state,
        }
    }

    /// Whether its end has been decided (even if not yet committed): no more changes.
    pub fn is_ending(&self) -> bool {
        self.row.state.is_final()
    }

    /// The row with current counters, for the database.
    pub fn snapshot(&self) -> TaskRow {
        let mut row = self.row.clone();
        row.progress = self.log.progress(self.row.attempt, self.chunk_received);
        row
    }

    /// Moves to a live state, saying why.
    pub fn set_state(&mut self, state: TaskState, reason: String, store: &Store) {
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
        store.send(Op::Task(Box::new(self.snapshot())));
        if let Persist::Event(event) = persist {
            store.send(Op::Event {
                task_id: self.row.id,
                event,
                progress: self.log.progress(self.row.attempt, self.chunk_received),
            });
        }
        self.notify.notify_waiters();
    }

    /// Adds an output chunk; `bytes` of hub memory are released when it is committed.
    pub fn record_output(&mut self, chunk: OutputChunk, chunk_seq: u64, bytes: u64, store: &Store) {
        self.chunk_received = self.chunk_received.max(chunk_seq);
        let persist = self
            .log
            .append(self.row.id, self.row.engine_id, Kind::Output(chunk));
        let (event, gap) = match persist {
            Persist::Event(event) => (Some(event), None),
            Persist::Gap(gap) => (None, Some(gap)),
        };
        store.send(Op::Output {
            task_id: self.row.id,
            event,
            gap,
            progress: self.log.progress(self.row.attempt, self.chunk_received),
            bytes,
        });
        self.notify.notify_waiters();
    }

    /// Decides the task's end; it is shown when the database has it. Later calls do nothing.
    pub fn finish(&mut self, mut result: TaskResult, store: &Store) {
        if self.is_ending() {
            return;
        }
        self.input = None;
        result.attempt = self.row.attempt;
        let shown = self.row.state;
        self.row.state = result.state();
        self.row.reason.clone_from(&result.error);
        self.row.result = Some(result.clone());
        let event = self
            .log
            .prepare_final(self.row.id, self.row.engine_id, Kind::Result(result));
        self.pending_final = Some((event.clone(), shown));
        store.send(Op::Finish {
            event,
            row: Box::new(self.snapshot()),
        });
    }

    /// Ends the task without its process having ended on its own (aborted, lost, failed).
    pub fn end(&mut self, state: TaskState, error: String, store: &Store) {
        self.finish(
            TaskResult {
                state: state as i32,
                exit: None,
                error,
                started_us: self.row.started_us,
                finished_us: now_us(),
                attempt: self.row.attempt,
            },
            store,
        );
    }

    /// The database has the end: show it to followers.
    pub fn publish_final(&mut self) {
        if let Some((event, _)) = self.pending_final.take() {
            self.log.publish(event);
            self.notify.notify_waiters();
        }
    }

    /// Whether the task has ended, its end is shown, and nobody follows it: it can leave memory.
    pub fn is_done_with(&self) -> bool {
        self.row.state.is_final() && self.pending_final.is_none() && self.followers.is_empty()
    }

    /// A follower has read up to `cursor` (or left, with `None`).
    pub fn follower_at(&mut self, follower: u64, cursor: Option<u64>) {
        match cursor {
            Some(cursor) => self.followers.insert(follower, cursor),
            None => self.followers.remove(&follower),
        };
        self.log.set_lead(self.followers.values().max().copied());
    }

    /// The acknowledgement for the engine, unless followers lag too far behind for one.
    pub fn ack(&mut self, finished: bool) -> Option<Ack> {
        if !finished && self.log.backlogged() {
            self.ack_withheld = true;
            return None;
        }
        self.ack_withheld = false;
        Some(Ack {
            task_id: self.row.id,
            attempt: self.row.attempt,
            chunk_seq: self.chunk_committed,
            finished,
        })
    }

    /// Records a new placement on an engine.
    pub fn begin_attempt(&mut self, engine_id: u32, uuid: &str, hostname: &str, store: &Store) {
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
        store.send(Op::Attempt {
            task_id: self.row.id,
            attempt: attempt.clone(),
        });
        self.attempts.push(attempt);
        store.send(Op::Task(Box::new(self.snapshot())));
    }

    /// Records how the current attempt ended.
    pub fn end_attempt(&mut self, outcome: &str, store: &Store) {
        let number = self.row.attempt;
        if let Some(attempt) = self.attempts.iter_mut().find(|a| a.number == number) {
            attempt.ended_us = now_us();
            attempt.outcome = outcome.to_owned();
            store.send(Op::Attempt {
                task_id: self.row.id,
                attempt: attempt.clone(),
            });
        }
    }

    /// The task as `GetTask` and `ListTasks` show it.
    pub fn info(&self) -> TaskInfo {
        let mut info = self.snapshot().info(self.attempts.clone());
        if let Some((_, shown)) = &self.pending_final {
            info.state = *shown as i32;
            info.result = None;
            info.next_seq = self.log.next_seq() - 1;
        }
        info
    }
}
