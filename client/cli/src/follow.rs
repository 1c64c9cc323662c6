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
        }
    }

    /// Follows `events` to the end of every task in them; returns the exit status.
    pub(crate) async fn run(mut self, mut client: Client, events: Events) -> anyhow::Result<u8> {
        let mut stream: EventStream = Box::pin(events);
        loop {
            match self.drain(&mut stream).await? {
                None if self.next.is_empty() => break,
                // The stream ended with tasks unfinished: a replay that began past a task's
                // last event. Its record has the end.
                None => {
                    self.settle_from_records(&client).await?;
                    break;
                }
                Some(err) if self.next.is_empty() && self.ended.is_empty() => {
                    // Not one event arrived: there is nothing to pick up from.
                    return Err(err.into());
                }
                Some(err) => match self.reconnect(&client, &err).await {
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

    /// Shows events until the stream ends (`None`) or breaks in a way a reconnection can
    /// mend (`Some`); other errors are returned.
    async fn drain(&mut self, stream: &mut EventStream) -> anyhow::Result<Option<warren::Error>> {
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(event) => event,
                Err(err) if hub_went_away(&err) => return Ok(Some(err)),
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
            self.printer.event(event)?;
        }
        Ok(None)
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
            tokio::time::sleep(delay.min(deadline - Instant::now())).await;
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
        eprintln!(
            "warren: the hub did not come back within {} ({last})",
            time::duration(self.reconnect_for)
        );
        for (task, seq) in &self.next {
            eprintln!(
                "warren: task {task} has not ended; follow it with: {} attach {task} --from {seq}",
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
    reconnect_for: Duration,
    format: crate::format::Format,
) -> anyhow::Result<u8> {
    let events = client.follow(task, from).await?;
    let printer = if format == crate::format::Format::Json {
        Printer::json()
    } else {
        Printer::new(1)
    };
    let mut follower = Follower::new(hub, printer, reconnect_for);
    follower.expect(task, from);
    follower.run(client.clone(), events).await
}

/// Whether an error means the hub (or the way to it) went away, rather than that it refused.
fn hub_went_away(err: &warren::Error) -> bool {
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
