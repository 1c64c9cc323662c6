//! Following tasks: replay a task's events from a sequence number, then stream it live.
//!
//! A follower reads through its own cursor: from the task's window in memory while it keeps
//! up, from the history when it is further behind (or the task has ended and left memory).
//! It never holds up the engine or another follower. An idle stream carries a heartbeat every
//! heartbeat interval, so a client can tell a quiet task from a vanished hub; when the hub
//! stops, the stream ends with UNAVAILABLE and says where to pick up.
//!
//! What followers hold is bounded for all of them together (`--follow-memory`): a batch read
//! from the history holds its share of the budget until its last event has been taken on by
//! the transport, and an event from memory holds its size until the stream asks for the next
//! one. A client that reads nothing therefore holds at most its last event (or batch), and once
//! the budget is spent other followers wait for room instead of the hub growing. The number of
//! follow streams is bounded per client process and in all (`--max-follow-streams`).

use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use warren_proto::v1::{Heartbeat, OutputGap, OutputStream, TaskEvent, task_event};

use super::acks::AckCause;
use super::tasklog::{Read, cost};
use super::{Hub, State};
use crate::error::HubError;
use crate::model::{Entry, Submitter};

/// Entries taken from memory per lock.
const BATCH: usize = 64;
/// Bytes read from the history per query, about.
const STORED_BATCH: usize = 1 << 20;

/// A stream of one or more tasks' events.
pub(crate) type EventStream = BoxStream<'static, Result<TaskEvent, HubError>>;

/// Whether a stream of several tasks carries their recorded stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdinChunks {
    /// As the history has them.
    Shown,
    /// Left out: the caller is the one who sent them (`Execution.Interact`), and echoing a
    /// GiB of stdin back to it would double what the hub sends.
    Omitted,
}

/// Ids for followers, so a task knows where each of its followers is.
static NEXT_FOLLOWER: AtomicU64 = AtomicU64::new(1);

struct Follower {
    id: u64,
    hub: Arc<Hub>,
    task_id: u64,
    client: u32,
    cursor: u64,
    pending: VecDeque<TaskEvent>,
    done: bool,
    /// Counted among the in-memory task's followers.
    attached: bool,
    /// The history batch being handed out, holding its share of the follow budget.
    batch: Option<OwnedSemaphorePermit>,
    /// The event last handed out (or the batch it ended), held until the next is asked for.
    handed: Option<OwnedSemaphorePermit>,
    /// A gap read from the history that runs on into the window (see `Follower::read_stored`).
    straddling: Option<OutputGap>,
    span: tracing::Span,
}

enum Step {
    Again,
    Wait(tokio::sync::futures::OwnedNotified),
    Stored { below: Option<u64> },
    Fail(HubError),
}

impl State {
    /// Counts a new follower of `task_id` from `from_seq`, within the limits; says whether
    /// the task is in memory (the follower is then among its followers).
    fn attach(
        &mut self,
        task_id: u64,
        follower: u64,
        from_seq: u64,
        client: Submitter,
    ) -> Result<bool, HubError> {
        let limits = &self.settings.limits;
        if self.follow_streams >= limits.max_follow_streams {
            return Err(HubError::exhausted(format!(
                "the hub already has {} follow streams open (--max-follow-streams {}); close some, or retry later",
                self.follow_streams, limits.max_follow_streams
            )));
        }
        let streams = self
            .streams_by_client
            .get(&client.pid)
            .copied()
            .unwrap_or(0);
        if streams >= limits.max_streams_per_client {
            return Err(HubError::exhausted(format!(
                "this process (pid {}) already follows {streams} streams (--max-streams-per-client); close some",
                client.pid
            )));
        }
        let attached = match self.tasks.get_mut(&task_id) {
            Some(task) => {
                if task.follower_count() >= limits.max_followers_per_task {
                    return Err(HubError::exhausted(format!(
                        "task {task_id} already has {} followers (--max-followers-per-task)",
                        task.follower_count()
                    )));
                }
                task.follower_at(follower, Some(from_seq));
                true
            }
            None => false,
        };
        // Counted here, under the same lock as the checks; the follower's Drop undoes it.
        *self.streams_by_client.entry(client.pid).or_default() += 1;
        self.follow_streams += 1;
        Ok(attached)
    }

    /// A follower of a task in memory has read up to `cursor`, or left (`None`).
    fn follower_moved(&mut self, task_id: u64, follower: u64, cursor: Option<u64>) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        task.follower_at(follower, cursor);
        if task.is_done_with() {
            self.let_go(task_id);
        } else {
            self.acknowledge(task_id, AckCause::FollowersMoved);
        }
    }

    /// A follower of a task in memory has read everything shown and waits for more.
    fn follower_waits(&mut self, task_id: u64, follower: u64) {
        if let Some(task) = self.tasks.get_mut(&task_id)
            && task.follower_caught_up(follower)
        {
            self.acknowledge(task_id, AckCause::FollowersMoved);
        }
    }

    /// A follow stream of `client` has ended.
    fn detach(&mut self, client: u32) {
        if let Some(count) = self.streams_by_client.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.streams_by_client.remove(&client);
            }
        }
        self.follow_streams = self.follow_streams.saturating_sub(1);
    }
}

impl Hub {
    /// Follows one task from `from_seq` until its final event.
    pub(crate) async fn follow(
        self: &Arc<Self>,
        task_id: u64,
        from_seq: u64,
        client: Submitter,
    ) -> Result<EventStream, HubError> {
        let follower_id = NEXT_FOLLOWER.fetch_add(1, Ordering::Relaxed);
        let attached = self.update(|state| state.attach(task_id, follower_id, from_seq, client))?;
        // From here on the follower's Drop undoes the counting.
        let follower = Follower {
            id: follower_id,
            hub: self.clone(),
            task_id,
            client: client.pid,
            cursor: from_seq,
            pending: VecDeque::new(),
            done: false,
            attached,
            batch: None,
            handed: None,
            straddling: None,
            span: tracing::info_span!("follow", task = task_id, follower = follower_id),
        };
        if !attached {
            let info = self.get_task(task_id).await?;
            if from_seq > info.next_seq {
                return Err(HubError::PastTheEnd {
                    task_id,
                    events: info.next_seq,
                });
            }
        }
        let events = stream::unfold(follower, |f| {
            let span = f.span.clone();
            next_event(f).instrument(span)
        });
        Ok(with_heartbeats(events.boxed(), self.settings.heartbeat))
    }

    /// Follows several tasks from their start, interleaving their events as they come (their
    /// stdin chunks as `stdin` says).
    pub(crate) async fn follow_all(
        self: &Arc<Self>,
        task_ids: &[u64],
        client: Submitter,
        stdin: StdinChunks,
    ) -> Result<EventStream, HubError> {
        let mut streams = Vec::with_capacity(task_ids.len());
        for &id in task_ids {
            streams.push(self.follow(id, 0, client).await?);
        }
        let merged = stream::select_all(streams)
            .filter(move |item| {
                let keep = match item.as_ref().map(|e| &e.kind) {
                    // Each task's stream beats on its own; one beat for the whole is enough.
                    Ok(Some(task_event::Kind::Heartbeat(_))) => false,
                    Ok(Some(task_event::Kind::Output(chunk))) => {
                        stdin == StdinChunks::Shown || chunk.stream != OutputStream::Stdin as i32
                    }
                    _ => true,
                };
                std::future::ready(keep)
            })
            .boxed();
        Ok(with_heartbeats(merged, self.settings.heartbeat))
    }
}

/// Adds a heartbeat event whenever the stream has been quiet for `every`.
fn with_heartbeats(events: EventStream, every: Duration) -> EventStream {
    stream::unfold(events, move |mut events| async move {
        match tokio::time::timeout(every, events.next()).await {
            Ok(Some(item)) => Some((item, events)),
            Ok(None) => None,
            Err(_) => {
                let beat = TaskEvent {
                    kind: Some(task_event::Kind::Heartbeat(Heartbeat {
                        time_us: warren_proto::now_us(),
                    })),
                    ..TaskEvent::default()
                };
                Some((Ok(beat), events))
            }
        }
    })
    .boxed()
}

/// Takes room for `bytes` in the follow budget, waiting for it if need be (never more room
/// than the budget has in all, so one large event can always pass).
async fn take_room(
    budget: &Arc<Semaphore>,
    bytes: usize,
    all: usize,
) -> Option<OwnedSemaphorePermit> {
    let permits = bytes.clamp(1, all.min(u32::MAX as usize)) as u32;
    budget.clone().acquire_many_owned(permits).await.ok()
}

async fn next_event(mut f: Follower) -> Option<(Result<TaskEvent, HubError>, Follower)> {
    // Asked for the next event: the transport has taken the last one on.
    f.handed = None;
    let all = f.hub.settings.limits.follow_memory;
    loop {
        if let Some(event) = f.pending.pop_front() {
            if f.batch.is_none() {
                // From memory: its bytes are the task's, but the copy on its way out is ours.
                let bytes = usize::try_from(cost(&event)).unwrap_or(usize::MAX);
                f.handed = take_room(&f.hub.follow_budget, bytes, all).await;
            } else if f.pending.is_empty() {
                f.handed = f.batch.take();
            }
            return Some((Ok(event), f));
        }
        if f.done {
            return None;
        }
        match f.step() {
            Step::Again => {}
            Step::Wait(notified) => notified.await,
            Step::Stored { below } => {
                // Room first, then the read: a batch holds up to STORED_BATCH bytes.
                f.batch = take_room(&f.hub.follow_budget, STORED_BATCH, all).await;
                if let Err(err) = f.read_stored(below).await {
                    f.done = true;
                    return Some((Err(err), f));
                }
                if f.pending.is_empty() {
                    f.batch = None;
                }
            }
            Step::Fail(err) => {
                f.done = true;
                return Some((Err(err), f));
            }
        }
    }
}

impl Follower {
    /// Takes what memory has, or says where to look or what to wait for. Once the hub stops,
    /// what memory has is still handed out (a task's end among it), and the follower is told
    /// where to pick up instead of waiting or reading the history.
    fn step(&mut self) -> Step {
        let hub = self.hub.clone();
        hub.update(|state| {
            let stopping = state.stopping;
            let stopped = |cursor| {
                Step::Fail(HubError::StoppedFollowing {
                    task_id: self.task_id,
                    cursor,
                })
            };
            let Some(task) = state.tasks.get_mut(&self.task_id) else {
                if stopping {
                    return stopped(self.cursor);
                }
                // Everything is in the history now, that gap whole: read it again.
                self.straddling = None;
                return Step::Stored { below: None };
            };
            if let Some(gap) = self.straddling.take() {
                let window_start = task.log.window_start();
                if window_start > gap.last_seq + 1 {
                    // The window moved past it meanwhile, and the history's gap grew.
                    return Step::Stored {
                        below: Some(window_start),
                    };
                }
                let shown = task.log.window_output_bytes_through(gap.last_seq);
                if let Some(clipped) = clip(gap, window_start, shown) {
                    self.pending.push_back(
                        Entry::Gap(clipped).into_event(self.task_id, task.row.engine_id),
                    );
                }
                self.cursor = window_start;
            }
            // Registered before looking, so an event shown after the look still wakes us.
            let notified = task.notify.clone().notified_owned();
            let mut step = Step::Again;
            let mut waits = false;
            for _ in 0..BATCH {
                match task.log.read(self.cursor) {
                    Read::Ready(entry, next) => {
                        self.cursor = next;
                        self.pending
                            .push_back(entry.into_event(self.task_id, task.row.engine_id));
                    }
                    Read::Stored { .. } if self.pending.is_empty() && stopping => {
                        step = stopped(self.cursor);
                        break;
                    }
                    Read::Stored { below } if self.pending.is_empty() => {
                        step = Step::Stored { below: Some(below) };
                        break;
                    }
                    Read::Pending if self.pending.is_empty() && task.state().is_final() => {
                        self.done = true;
                        break;
                    }
                    Read::Pending if self.pending.is_empty() && stopping => {
                        step = stopped(self.cursor);
                        break;
                    }
                    Read::Pending if self.pending.is_empty() => {
                        step = Step::Wait(notified);
                        waits = true;
                        break;
                    }
                    Read::Stored { .. } | Read::Pending => break,
                }
            }
            if self.attached && !self.pending.is_empty() {
                state.follower_moved(self.task_id, self.id, Some(self.cursor));
            }
            if self.attached && waits {
                state.follower_waits(self.task_id, self.id);
            }
            step
        })
    }

    /// Reads the next batch from the history (for a task not in memory, up to its end).
    async fn read_stored(&mut self, below: Option<u64>) -> Result<(), HubError> {
        let entries = self
            .hub
            .store
            .entries(self.task_id, self.cursor, below, STORED_BATCH)
            .await?;
        if entries.is_empty() && below.is_none() {
            self.done = true;
        }
        for (entry, next) in entries {
            if let (Entry::Gap(gap), Some(below)) = (&entry, below)
                && gap.last_seq >= below
            {
                // The history records output past the cap as one growing gap, but the window
                // still shows its later events in full: taken whole, the gap would move this
                // follower past them, maybe past the lead, whose events the window would then
                // drop. It is cut where the window starts, under the hub's lock (`step`).
                self.straddling = Some(*gap);
                break;
            }
            self.cursor = next;
            self.pending.push_back(entry.into_event(self.task_id, 0));
        }
        Ok(())
    }
}

/// The part of a recorded gap before the window's start, given the output bytes the window
/// shows of the rest; none if the window shows all of it.
fn clip(gap: OutputGap, window_start: u64, shown: u64) -> Option<OutputGap> {
    (window_start > gap.first_seq).then(|| OutputGap {
        first_seq: gap.first_seq,
        last_seq: window_start - 1,
        bytes: gap.bytes.saturating_sub(shown),
    })
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.hub.update(|state| {
            state.detach(self.client);
            if self.attached {
                state.follower_moved(self.task_id, self.id, None);
            }
        });
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
