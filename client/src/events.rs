//! A task's events as they happen: typed, and as a [`Stream`].

use bytes::Bytes;
use futures_core::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, Sleep};
use warren_proto::passthrough::Received;
use warren_proto::v1::{self as proto, TaskState, task_event::Kind, task_result};

use crate::{Error, Result};

/// One event in a task's history.
///
/// ```
/// use warren::{Event, EventKind, OutputStream};
/// # fn show(event: Event) {
/// match event.kind {
///     EventKind::Output { stream: OutputStream::Stdout, data } => {
///         print!("[engine {}] {}", event.engine_id, String::from_utf8_lossy(&data))
///     }
///     EventKind::Result(outcome) => println!("task {} {}", event.task_id, outcome.state.label()),
///     _ => {}
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// The task.
    pub task_id: u64,
    /// The engine the task is placed on; 0 while it waits for one.
    pub engine_id: u32,
    /// The event's place in the task's history: consecutive from 0.
    pub seq: u64,
    /// When the hub recorded it, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a task.
///
/// ```
/// # fn f(kind: warren::EventKind) {
/// if let warren::EventKind::Gap { bytes, .. } = kind {
///     eprintln!("{bytes} bytes were past the hub's output cap");
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// Bytes the task wrote, exactly as written.
    Output {
        /// Which of its output streams.
        stream: OutputStream,
        /// The bytes.
        data: Bytes,
    },
    /// The task moved to a live state (queued, running).
    State {
        /// The new state.
        state: TaskState,
        /// Why, in words, when there is more to say than the state.
        reason: String,
        /// Which attempt (from 1) the task is on; more than 1 after a retry.
        attempt: u32,
    },
    /// The task's last event: how it ended.
    Result(Outcome),
    /// Events this follower will not see: the hub did not keep them (past the task's output
    /// cap).
    Gap {
        /// The first event skipped.
        first_seq: u64,
        /// The last event skipped.
        last_seq: u64,
        /// Output bytes in the events skipped.
        bytes: u64,
    },
}

/// Which of a task's output streams bytes came from.
///
/// ```
/// assert_ne!(warren::OutputStream::Stdout, warren::OutputStream::Stderr);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Stdin the task was given (streamed stdin, as recorded): seen when following a task
    /// ([`Client::follow`](crate::Client::follow)), never on the stream of the
    /// [`interact`](crate::Client::interact) call that sent it.
    Stdin,
}

/// How a task ended: its final state, how its process ended, and when.
///
/// ```
/// use warren::{Exit, Outcome};
/// let outcome = Outcome::from(warren::proto::TaskResult {
///     state: warren::proto::TaskState::Failed as i32,
///     exit: Some(warren::proto::task_result::Exit::ExitCode(3)),
///     ..Default::default()
/// });
/// assert_eq!(outcome.exit, Some(Exit::Code(3)));
/// assert!(!outcome.succeeded());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The final state.
    pub state: TaskState,
    /// How the process ended, if it ran.
    pub exit: Option<Exit>,
    /// What went wrong, when the state is not `Succeeded`.
    pub error: String,
    /// When the process started (0 if it never started), microseconds since the epoch.
    pub started_us: i64,
    /// When it ended, microseconds since the epoch.
    pub finished_us: i64,
    /// The attempt (from 1) that ended the task.
    pub attempt: u32,
    /// A cell that ended ok: the repr of its value, as `Out[n]` shows it (empty: none).
    pub value_repr: String,
    /// A cell that raised or was interrupted: the error.
    pub cell_error: Option<CellError>,
}

/// The error a cell ended with, typed.
///
/// ```
/// let error = warren::CellError { name: "ZeroDivisionError".into(), ..Default::default() };
/// assert_eq!(error.name, "ZeroDivisionError");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellError {
    /// The exception's type, e.g. `ZeroDivisionError` (`KeyboardInterrupt` when interrupted).
    pub name: String,
    /// Its text, e.g. `division by zero`.
    pub value: String,
    /// The traceback, as the interpreter prints it.
    pub traceback: String,
}

/// How a task's process ended.
///
/// ```
/// assert_ne!(warren::Exit::Code(9), warren::Exit::Signal(9));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl Outcome {
    /// A task that ended for a reason of its own (no process result), in `state`.
    ///
    /// ```
    /// let lost = warren::Outcome::new(warren::proto::TaskState::Lost, "its engine died");
    /// assert_eq!(lost.exit, None);
    /// ```
    pub fn new(state: TaskState, error: impl Into<String>) -> Self {
        Self {
            state,
            error: error.into(),
            ..Self::default()
        }
    }

    /// Whether the task succeeded.
    ///
    /// ```
    /// assert!(!warren::Outcome::default().succeeded());
    /// ```
    pub fn succeeded(&self) -> bool {
        self.state == TaskState::Succeeded
    }
}

impl From<proto::TaskResult> for Outcome {
    fn from(result: proto::TaskResult) -> Self {
        Self {
            state: result.state(),
            exit: result.exit.map(|exit| match exit {
                task_result::Exit::ExitCode(code) => Exit::Code(code),
                task_result::Exit::Signal(signal) => Exit::Signal(signal),
            }),
            error: result.error,
            started_us: result.started_us,
            finished_us: result.finished_us,
            attempt: result.attempt,
            value_repr: result.value_repr,
            cell_error: result.cell_error.map(|e| CellError {
                name: e.name,
                value: e.value,
                traceback: e.traceback,
            }),
        }
    }
}

impl Event {
    /// The typed form of a wire event; `None` for a heartbeat or a kind this SDK does not
    /// know (from a newer hub).
    ///
    /// ```
    /// use warren::proto::{Heartbeat, TaskEvent, task_event::Kind};
    /// let beat = TaskEvent { kind: Some(Kind::Heartbeat(Heartbeat::default())), ..Default::default() };
    /// assert_eq!(warren::Event::from_proto(beat), None);
    /// ```
    pub fn from_proto(event: proto::TaskEvent) -> Option<Self> {
        let kind = match event.kind? {
            Kind::Output(chunk) => EventKind::Output {
                stream: match chunk.stream() {
                    proto::OutputStream::Stderr => OutputStream::Stderr,
                    proto::OutputStream::Stdin => OutputStream::Stdin,
                    _ => OutputStream::Stdout,
                },
                data: chunk.data,
            },
            Kind::State(change) => EventKind::State {
                state: change.state(),
                reason: change.reason,
                attempt: change.attempt,
            },
            Kind::Result(result) => EventKind::Result(result.into()),
            Kind::Gap(gap) => EventKind::Gap {
                first_seq: gap.first_seq,
                last_seq: gap.last_seq,
                bytes: gap.bytes,
            },
            Kind::Heartbeat(_) => return None,
        };
        Some(Self {
            task_id: event.task_id,
            engine_id: event.engine_id,
            seq: event.seq,
            time_us: event.time_us,
            kind,
        })
    }

    /// When the hub recorded the event.
    ///
    /// ```
    /// # fn f(event: warren::Event) {
    /// let age = event.time().elapsed();
    /// # }
    /// ```
    pub fn time(&self) -> SystemTime {
        match u64::try_from(self.time_us) {
            Ok(us) => UNIX_EPOCH + Duration::from_micros(us),
            Err(_) => UNIX_EPOCH,
        }
    }

    /// The sequence number of the next event of this task a follower needs: past a gap, the
    /// first event after it.
    ///
    /// ```
    /// # fn f(event: warren::Event) {
    /// let resume_from = event.next_seq();
    /// # }
    /// ```
    pub fn next_seq(&self) -> u64 {
        match &self.kind {
            EventKind::Gap { last_seq, .. } => last_seq + 1,
            _ => self.seq + 1,
        }
    }
}

/// The events of one or more tasks as they happen, as wire messages: every event but the
/// heartbeats, which are taken care of. A stream that falls silent, without even a heartbeat,
/// for several heartbeat intervals ends with [`Error::Silent`] instead of hanging; a stream
/// ends after its first error.
///
/// Most programs want [`Events`], the typed form; this one is for programs that must see the
/// messages exactly as the hub sent them ([`Events::into_raw`]).
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// # async fn f(client: warren::Client) -> warren::Result<()> {
/// let mut raw = client.follow(7, 0).await?.into_raw();
/// while let Some(event) = raw.try_next().await? {
///     println!("{event:?}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RawEvents {
    inner: Received<proto::TaskEvent>,
    idle_limit: Duration,
    silence: Pin<Box<Sleep>>,
    /// The silence timer starts afresh when the caller asks for the next event (so that a
    /// caller busy with the last one is not taken for a silent hub).
    rearm: bool,
    done: bool,
}

impl RawEvents {
    pub(crate) fn new(inner: Received<proto::TaskEvent>, idle_limit: Duration) -> Self {
        Self {
            inner,
            idle_limit,
            silence: Box::pin(tokio::time::sleep(idle_limit)),
            rearm: true,
            done: false,
        }
    }
}

impl Stream for RawEvents {
    type Item = Result<proto::TaskEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.rearm) {
            let deadline = Instant::now() + this.idle_limit;
            this.silence.as_mut().reset(deadline);
        }
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    let deadline = Instant::now() + this.idle_limit;
                    this.silence.as_mut().reset(deadline);
                    if matches!(event.kind, Some(Kind::Heartbeat(_))) {
                        continue;
                    }
                    this.rearm = true;
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(Some(Err(status))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(status.into())));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if this.silence.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        return Poll::Ready(Some(Err(Error::Silent(this.idle_limit))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The events of one or more tasks as they happen, typed ([`Event`]), until every task
/// followed has ended. Heartbeats are taken care of: a stream that falls silent for several
/// heartbeat intervals ends with [`Error::Silent`] instead of hanging. The stream ends after
/// its first error.
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// use warren::{Client, EventKind, Job};
/// # async fn f(client: Client) -> warren::Result<()> {
/// let mut events = client.run(Job::script("echo hi")).await?;
/// while let Some(event) = events.try_next().await? {
///     if let EventKind::Result(outcome) = event.kind {
///         println!("task {} ended: {}", event.task_id, outcome.state.label());
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Events {
    raw: RawEvents,
}

impl Events {
    pub(crate) fn new(raw: RawEvents) -> Self {
        Self { raw }
    }

    /// The same stream as wire messages, for a program that must see them as sent.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let raw = client.follow(7, 0).await?.into_raw();
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_raw(self) -> RawEvents {
        self.raw
    }
}

impl Stream for Events {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.raw).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => match Event::from_proto(event) {
                    Some(event) => return Poll::Ready(Some(Ok(event))),
                    // A kind from a newer hub: nothing this program could act on.
                    None => continue,
                },
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
