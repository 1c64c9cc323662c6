//! Following tasks to their end, over hub restarts.
//!
//! A follower remembers, for each task not yet ended, the sequence number of the next event it
//! needs. When the stream breaks or falls silent (the hub was killed, restarted, or stopped),
//! it reconnects with backoff for `--reconnect-timeout`, finding the hub afresh each time (a
//! restarted hub has a new key, and may have a new id), and follows each task again from that
//! number with `StreamOutput`: no event is shown twice and none is skipped. If the hub does not
//! come back in time it says, for each unfinished task, how to pick it up later.

use futures_util::stream::{self, Stream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;
use warren::proto::TaskState;
use warren::{Client, Event, EventKind, Events, Outcome};

use crate::cli::HubArgs;
use crate::output::Printer;
use crate::signals::{self, Act, Signals};
use crate::time;

/// What `warren` exits with when the hub went away and did not come back.
const EXIT_HUB_GONE: u8 = 255;
/// The first and the longest wait between reconnection attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One or more tasks' events, merged.
type EventStream = Pin<Box<dyn Stream<Item = warren::Result<Event>>>>;

/// Shows tasks' events until every task has ended, reconnecting when the hub goes away.
pub(crate) struct Follower<'a> {
    hub: &'a HubArgs,
    printer: Printer,
    reconnect_for: Duration,
    /// Tasks not ended yet, and the sequence number of the next event each needs.
    next: BTreeMap<u64, u64>,
    /// Tasks whose end has been shown.
    ended: BTreeSet<u64>,
    /// In the foreground: the signals to forward (`signals`).
    signals: Option<Signals>,
}

/// How showing a stream's events stopped.
enum Drained {
    /// The stream ended.
    Ended,
    /// It broke in a way a reconnection can mend.
    Broke(warren::Error),
    /// Time to exit with this status (detached, or stdout closed).
    Exit(u8),
}

/// What came first: an event, or a signal.
enum Next {
    Item(Option<warren::Result<Event>>),
    Signal(Act),
}

impl<'a> Follower<'a> {
    /// A follower that prints with `printer` and reconnects for up to `reconnect_for`.
    pub(crate) fn new(hub: &'a HubArgs, printer: Printer, reconnect_for: Duration) -> Self {
        Self {
            hub,
            printer,
            reconnect_for,
            next: BTreeMap::new(),
            ended: BTreeSet::new(),
            signals: None,
        }
    }

    /// Forwards these signals to the tasks while following them (a foreground run).
    pub(crate) fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Follows `events` to the end of every task in them; returns the exit status.
    pub(crate) async fn run(mut self, mut client: Client, events: Events) -> anyhow::Result<u8> {
        let mut stream: EventStream = Box::pin(events);
        loop {
            match self.drain(&client, &mut stream).await? {
                Drained::Exit(code) => return Ok(code),
                Drained::Ended if self.next.is_empty() => break,
                // The stream ended with tasks unfinished: a replay that began past a task's
                // last event. Its record has the end.
                Drained::Ended => {
                    self.settle_from_records(&client).await?;
                    break;
                }
                Drained::Broke(err) if self.next.is_empty() && self.ended.is_empty() => {
                    // Not one event arrived: there is nothing to pick up from.
                    return Err(err.into());
                }
                Drained::Broke(err) => match self.reconnect(&client, &err).await {
                    Some((again, events)) => (client, stream) = (again, events),
                    None => return Ok(EXIT_HUB_GONE),
                },
            }
        }
        Ok(self.printer.exit_code())
    }

    /// Starts following one task from `from`.
    pub(crate) fn expect(&mut self, task: u64, from: u64) {
        self.next.insert(task, from);
    }

    /// Shows events until the stream ends or breaks in a way a reconnection can mend, or (in
    /// the foreground) it is time to exit; other errors are returned.
    async fn drain(
        &mut self,
        client: &Client,
        stream: &mut EventStream,
    ) -> anyhow::Result<Drained> {
        loop {
            let next = match self.signals.as_mut() {
                None => Next::Item(stream.next().await),
                Some(signals) => tokio::select! {
                    item = stream.next() => Next::Item(item),
                    act = signals.next() => Next::Signal(act),
                },
            };
            let item = match next {
                Next::Item(Some(item)) => item,
                Next::Item(None) => return Ok(Drained::Ended),
                Next::Signal(Act::Detach) => return Ok(Drained::Exit(self.detach())),
                Next::Signal(Act::Forward(signal)) => {
                    let explain = self.signals.as_mut().is_some_and(|s| s.first_press(signal));
                    let tasks: Vec<u64> = self.next.keys().copied().collect();
                    signals::forward(client, &tasks, signal, &mut self.printer, explain).await;
                    continue;
                }
            };
            let event = match item {
                Ok(event) => event,
                Err(err) if hub_went_away(&err) => return Ok(Drained::Broke(err)),
                Err(err) => return Err(err.into()),
            };
            let task = event.task_id;
            if self.ended.contains(&task) {
                continue;
            }
            let next = self.next.entry(task).or_insert(0);
            if event.seq < *next {
                // Already shown before a reconnection.
                continue;
            }
            *next = event.next_seq();
            if matches!(event.kind, EventKind::Result(_)) {
                self.next.remove(&task);
                self.ended.insert(task);
            }
            match self.printer.event(event) {
                Ok(()) => {}
                Err(err)
                    if err.kind() == std::io::ErrorKind::BrokenPipe && self.signals.is_some() =>
                {
                    let tasks: Vec<u64> = self.next.keys().copied().collect();
                    signals::stdout_closed(client, &tasks).await;
                    return Ok(Drained::Exit(signals::EXIT_SIGPIPE));
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Leaves the tasks running: says how to follow each again; the exit status.
    fn detach(&mut self) -> u8 {
        self.printer
            .note("detached; the tasks go on, their stdin closed");
        for (task, seq) in &self.next {
            self.printer.note(&format!(
                "task {task} goes on; follow it with: {} attach {task} --from {seq}",
                self.hub.hint()
            ));
        }
        signals::EXIT_DETACHED
    }

    /// Takes the ends of unfinished tasks from their records (for a replay past the end).
    async fn settle_from_records(&mut self, client: &Client) -> anyhow::Result<()> {
        for task in std::mem::take(&mut self.next).into_keys() {
            let info = client.task(task).await?;
            let result = info.result.map_or_else(
                || {
                    Outcome::new(
                        TaskState::Failed,
                        "the hub ended the stream before the task ended",
                    )
                },
                Outcome::from,
            );
            self.ended.insert(task);
            self.printer.record(task, result);
        }
        Ok(())
    }

    /// Reconnects with backoff and follows every unfinished task from where it was; `None`
    /// once `reconnect_for` has passed (after saying how to pick the tasks up).
    async fn reconnect(
        &mut self,
        client: &Client,
        why: &warren::Error,
    ) -> Option<(Client, EventStream)> {
        let deadline = Instant::now() + self.reconnect_for;
        let mut last = in_short(why);
        if !self.reconnect_for.is_zero() {
            self.printer.note(&format!(
                "{last}; reconnecting for up to {}",
                time::duration(self.reconnect_for)
            ));
        }
        let mut delay = FIRST_BACKOFF;
        while Instant::now() < deadline {
            let pause = tokio::time::sleep(delay.min(deadline - Instant::now()));
            match self.signals.as_mut() {
                Some(signals) => tokio::select! {
                    () = pause => {}
                    // The hub is away: nothing to forward to. Stop waiting.
                    _ = signals.next() => {
                        last = "stopped waiting (a signal)".into();
                        break;
                    }
                },
                None => pause.await,
            }
            delay = (delay * 2).min(MAX_BACKOFF);
            match tokio::time::timeout_at(deadline, self.resume(client)).await {
                Ok(Ok(found)) => {
                    let tasks: Vec<String> = self
                        .next
                        .iter()
                        .map(|(task, seq)| format!("task {task} from event {seq}"))
                        .collect();
                    self.printer
                        .note(&format!("reconnected; following {}", tasks.join(", ")));
                    return Some(found);
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "reconnecting: not yet");
                    last = err;
                }
                Err(_) => break,
            }
        }
        let end = crate::terminal::newline();
        eprint!(
            "warren: the hub did not come back within {} ({last}){end}",
            time::duration(self.reconnect_for)
        );
        for (task, seq) in &self.next {
            eprint!(
                "warren: task {task} has not ended; follow it with: {} attach {task} --from {seq}{end}",
                self.hub.hint()
            );
        }
        None
    }

    /// One attempt: find the hub afresh (the files are read again: a restarted hub has a new
    /// id and may have a new key), then follow each unfinished task from its next event.
    async fn resume(&mut self, client: &Client) -> Result<(Client, EventStream), String> {
        let client = client.reconnect().await.map_err(|err| {
            let err = crate::explain_connect_error(self.hub, err);
            err.downcast_ref::<warren::Error>()
                .map_or_else(|| crate::one_line(&err), in_short)
        })?;
        let mut streams = Vec::new();
        let mut vanished = Vec::new();
        for (&task, &seq) in &self.next {
            match client.follow(task, seq).await {
                Ok(events) => streams.push(events),
                Err(err)
                    if err.status().map(tonic::Status::code) == Some(tonic::Code::NotFound) =>
                {
                    vanished.push((task, err.to_string()));
                }
                Err(err) => return Err(in_short(&err)),
            }
        }
        for (task, why) in vanished {
            self.next.remove(&task);
            self.ended.insert(task);
            self.printer
                .note(&format!("task {task} can't be followed again: {why}"));
            self.printer
                .record(task, Outcome::new(TaskState::Lost, why));
        }
        Ok((client, Box::pin(stream::select_all(streams))))
    }
}

/// Follows one task from a sequence number (`warren attach`); with --json each event is a line
/// of JSON.
pub(crate) async fn attach(
    hub: &HubArgs,
    client: &Client,
    task: u64,
    from: u64,
    printer: Printer,
    reconnect_for: Duration,
) -> anyhow::Result<u8> {
    let events = client.follow(task, from).await?;
    let mut follower = Follower::new(hub, printer, reconnect_for);
    follower.expect(task, from);
    follower.run(client.clone(), events).await
}

/// Whether an error means the hub (or the way to it) went away, rather than that it refused.
pub(crate) fn hub_went_away(err: &warren::Error) -> bool {
    use tonic::Code;
    match err {
        warren::Error::Silent(_) | warren::Error::NoHub { .. } => true,
        warren::Error::Status(status) => {
            // A status with a source was made here from a broken connection.
            std::error::Error::source(status).is_some()
                || matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                )
        }
        _ => false,
    }
}

/// What went wrong, without the advice meant for a command that gives up at once.
fn in_short(err: &warren::Error) -> String {
    match err {
        warren::Error::NoHub { socket, reason } => {
            format!("no hub answers at {}: {reason}", socket.display())
        }
        warren::Error::Silent(limit) => format!(
            "no word from the hub for {}, not even a heartbeat",
            time::duration(*limit)
        ),
        other => other.to_string(),
    }
}
