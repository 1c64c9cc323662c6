//! Following one mapped task to its end on a stream of its own, and telling the map when it
//! starts and how it ended.
//!
//! A stream that breaks (the hub restarted, or was busy) is opened again from the next event
//! the task needs, with backoff, for up to `--reconnect-timeout`; a stream refused because
//! the hub's bound on follow streams is reached waits for one to end. Past that, the task's
//! record says how it ended.

use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use warren::proto::TaskState;
use warren::{Client, EventKind, Outcome};

use super::output::Sink;
use crate::follow::hub_went_away;

/// The first and the longest wait before a stream is opened again.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a watched task tells the map.
pub(crate) enum Message {
    /// It started running.
    Started(u64),
    /// It ended.
    Ended(Box<Ended>),
}

/// How a task ended, and what it wrote.
pub(crate) struct Ended {
    /// The task.
    pub(crate) task: u64,
    /// The engine it ran on last; 0 if none.
    pub(crate) engine: u32,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Its output bytes.
    pub(crate) received: u64,
    /// Its output, held or written.
    pub(crate) sink: Sink,
}

/// One task followed to its end.
pub(crate) struct Watch {
    client: Client,
    task: u64,
    sink: Sink,
    engine: u32,
    received: u64,
    /// The next event the task needs.
    next: u64,
    reconnect_for: Duration,
    tx: mpsc::UnboundedSender<Message>,
}

impl Watch {
    /// Follows `task` in the background, sending what happens on `tx`.
    pub(crate) fn start(
        client: &Client,
        task: u64,
        sink: Sink,
        reconnect_for: Duration,
        tx: &mpsc::UnboundedSender<Message>,
    ) {
        let watch = Self {
            client: client.clone(),
            task,
            sink,
            engine: 0,
            received: 0,
            next: 0,
            reconnect_for,
            tx: tx.clone(),
        };
        tokio::spawn(watch.run());
    }

    async fn run(mut self) {
        let outcome = self.follow().await;
        let ended = Ended {
            task: self.task,
            engine: self.engine,
            outcome,
            received: self.received,
            sink: self.sink,
        };
        let _ = self.tx.send(Message::Ended(Box::new(ended)));
    }

    /// Follows the task until its end, opening the stream again when it breaks.
    async fn follow(&mut self) -> Outcome {
        let mut delay = FIRST_BACKOFF;
        let mut gone_since: Option<Instant> = None;
        loop {
            let why = match self.client.follow(self.task, self.next).await {
                Ok(mut events) => {
                    gone_since = None;
                    delay = FIRST_BACKOFF;
                    loop {
                        match events.next().await {
                            Some(Ok(event)) => {
                                if event.seq < self.next {
                                    continue;
                                }
                                self.next = event.next_seq();
                                if event.engine_id != 0 {
                                    self.engine = event.engine_id;
                                }
                                if let Some(outcome) = self.take(event.kind) {
                                    return outcome;
                                }
                            }
                            Some(Err(err)) => break err,
                            // Ended without the task's end: its record has it.
                            None => return self.recorded_end().await,
                        }
                    }
                }
                Err(err) => err,
            };
            let busy =
                why.status().map(tonic::Status::code) == Some(tonic::Code::ResourceExhausted);
            if !busy && !hub_went_away(&why) {
                return Outcome::new(
                    TaskState::Unspecified,
                    format!("warren could not follow it: {why}"),
                );
            }
            if !busy {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.reconnect_for {
                    return Outcome::new(
                        TaskState::Unspecified,
                        format!(
                            "the hub went away and did not come back within --reconnect-timeout: {why}"
                        ),
                    );
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Takes one event; the outcome if it is the task's end.
    fn take(&mut self, kind: EventKind) -> Option<Outcome> {
        match kind {
            EventKind::Output { stream, data } => {
                self.received += data.len() as u64;
                if let Err(err) = self.sink.write(stream, &data) {
                    eprintln!("warren: cannot keep task {}'s output: {err}", self.task);
                }
                None
            }
            EventKind::State {
                state: TaskState::Running,
                ..
            } => {
                let _ = self.tx.send(Message::Started(self.task));
                None
            }
            EventKind::Result(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The task's end from its record, for a stream that ended without it.
    async fn recorded_end(&self) -> Outcome {
        match self.client.task(self.task).await {
            Ok(info) => info.result.map_or_else(
                || {
                    Outcome::new(
                        TaskState::Unspecified,
                        "the hub ended its stream before the task ended",
                    )
                },
                Outcome::from,
            ),
            Err(err) => Outcome::new(
                TaskState::Unspecified,
                format!("warren could not read its record: {err}"),
            ),
        }
    }
}
