//! Following tasks: replay a task's events from a sequence number, then stream it live.
//!
//! A follower reads through its own cursor: from the task's window in memory while it keeps
//! up, from the database when it is further behind (or the task has ended and left memory).
//! It never holds up the engine or another follower. An idle stream carries a heartbeat every
//! heartbeat interval, so a client can tell a quiet task from a vanished hub; when the hub
//! stops, the stream ends with UNAVAILABLE and says where to pick up.
//!
//! What followers hold is bounded for all of them together (`--follow-memory`): a batch read
//! from the database holds its share of the budget until its last event has been taken on by
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
use tonic::Status;
use warren_proto::v1::{Heartbeat, TaskEvent, task_event};

use crate::state::Hub;
use crate::state::task::Submitter;
use crate::state::tasklog::{Entry, Read};

/// Entries taken from memory per lock.
const BATCH: usize = 64;
/// Bytes read from the database per query, about.
const STORED_BATCH: usize = 1 << 20;

/// A stream of one or more tasks' events.
pub type EventStream = BoxStream<'static, Result<TaskEvent, Status>>;

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
    /// The database batch being handed out, holding its share of the follow budget.
    batch: Option<OwnedSemaphorePermit>,
    /// The event last handed out (or the batch it ended), held until the next is asked for.
    handed: Option<OwnedSemaphorePermit>,
}

enum Step {
    Again,
    Wait(tokio::sync::futures::OwnedNotified),
    Stored { below: Option<u64> },
    Fail(Status),
}

/// Follows one task from `from_seq` until its final event.
pub async fn follow(
    hub: Arc<Hub>,
    task_id: u64,
    from_seq: u64,
    client: Submitter,
) -> Result<EventStream, Status> {
    let limits = hub.settings().limits.clone();
    let follower_id = NEXT_FOLLOWER.fetch_add(1, Ordering::Relaxed);
    let attached = {
        let mut state = hub.lock();
        if state.follow_streams >= limits.max_follow_streams {
            return Err(Status::resource_exhausted(format!(
                "the hub already has {} follow streams open (--max-follow-streams {}); close some, or retry later",
                state.follow_streams, limits.max_follow_streams
            )));
        }
        let streams = state
            .streams_by_client
            .get(&client.pid)
            .copied()
            .unwrap_or(0);
        if streams >= limits.max_streams_per_client {
            return Err(Status::resource_exhausted(format!(
                "this process (pid {}) already follows {streams} streams (--max-streams-per-client); close some",
                client.pid
            )));
        }
        let attached = match state.tasks.get_mut(&task_id) {
            Some(task) => {
                if task.followers.len() >= limits.max_followers_per_task {
                    return Err(Status::resource_exhausted(format!(
                        "task {task_id} already has {} followers (--max-followers-per-task)",
                        task.followers.len()
                    )));
                }
                task.follower_at(follower_id, Some(from_seq));
                true
            }
            None => false,
        };
        // Counted here, under the same lock as the checks; the follower's Drop undoes it.
        *state.streams_by_client.entry(client.pid).or_default() += 1;
        state.follow_streams += 1;
        attached
    };
    // From here on the follower's Drop undoes the counting.
    let follower = Follower {
        id: follower_id,
        hub: hub.clone(),
        task_id,
        client: client.pid,
        cursor: from_seq,
        pending: VecDeque::new(),
        done: false,
        attached,
        batch: None,
        handed: None,
    };
    if !attached {
        let info = hub.get_task(task_id).await?;
        if from_seq > info.next_seq {
            return Err(Status::out_of_range(format!(
                "task {task_id} ended with {} events (seq 0 to {}); ask for a seq up to {}",
                info.next_seq,
                info.next_seq.saturating_sub(1),
                info.next_seq
            )));
        }
    }
    let every = hub.settings().heartbeat;
    Ok(with_heartbeats(
        stream::unfold(follower, next_event).boxed(),
        every,
    ))
}

/// Follows several tasks from their start, interleaving their events as they come.
pub async fn follow_all(
    hub: Arc<Hub>,
    task_ids: &[u64],
    client: Submitter,
) -> Result<EventStream, Status> {
    let mut streams = Vec::with_capacity(task_ids.len());
    for &id in task_ids {
        streams.push(follow(hub.clone(), id, 0, client).await?);
    }
    let merged = stream::select_all(streams)
        .filter(|item| {
            // Each task's stream beats on its own; one beat for the whole is enough.
            let heartbeat =
                matches!(item, Ok(e) if matches!(e.kind, Some(task_event::Kind::Heartbeat(_))));
            std::future::ready(!heartbeat)
        })
        .boxed();
    Ok(with_heartbeats(merged, hub.settings().heartbeat))
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

/// What an event costs the follow budget: its output bytes and a little for the rest.
fn event_cost(event: &TaskEvent) -> usize {
    let data = match &event.kind {
        Some(task_event::Kind::Output(chunk)) => chunk.data.len(),
        _ => 0,
    };
    data + 128
}

async fn next_event(mut f: Follower) -> Option<(Result<TaskEvent, Status>, Follower)> {
    // Asked for the next event: the transport has taken the last one on.
    f.handed = None;
    let all = f.hub.settings().limits.follow_memory;
    loop {
        if let Some(event) = f.pending.pop_front() {
            if f.batch.is_none() {
                // From memory: its bytes are the task's, but the copy on its way out is ours.
                f.handed = take_room(&f.hub.follow_budget, event_cost(&event), all).await;
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
                if let Err(status) = f.read_stored(below).await {
                    f.done = true;
                    return Some((Err(status), f));
                }
                if f.pending.is_empty() {
                    f.batch = None;
                }
            }
            Step::Fail(status) => {
                f.done = true;
                return Some((Err(status), f));
            }
        }
    }
}

impl Follower {
    /// Takes what memory has, or says where to look or what to wait for.
    fn step(&mut self) -> Step {
        let mut state = self.hub.lock();
        if state.stopping {
            return Step::Fail(Status::unavailable(format!(
                "the hub is shutting down; task {id} has not ended. Follow it again with `warren attach {id} --from {}` once a hub is back",
                self.cursor,
                id = self.task_id
            )));
        }
        let Some(task) = state.tasks.get_mut(&self.task_id) else {
            return Step::Stored { below: None };
        };
        // Registered before looking, so an event shown after the look still wakes us.
        let notified = task.notify.clone().notified_owned();
        let mut step = Step::Again;
        for _ in 0..BATCH {
            match task.log.read(self.cursor) {
                Read::Ready(entry, next) => {
                    self.cursor = next;
                    self.pending
                        .push_back(to_event(entry, self.task_id, task.row.engine_id));
                }
                Read::Stored { below } if self.pending.is_empty() => {
                    step = Step::Stored { below: Some(below) };
                    break;
                }
                Read::Pending if self.pending.is_empty() && task.state().is_final() => {
                    self.done = true;
                    break;
                }
                Read::Pending if self.pending.is_empty() => {
                    step = Step::Wait(notified);
                    break;
                }
                Read::Stored { .. } | Read::Pending => break,
            }
        }
        if self.attached && !self.pending.is_empty() {
            task.follower_at(self.id, Some(self.cursor));
            state.release_ack(self.task_id);
        }
        step
    }

    /// Reads the next batch from the database (for a task not in memory, up to its end).
    async fn read_stored(&mut self, below: Option<u64>) -> Result<(), Status> {
        let (task_id, from) = (self.task_id, self.cursor);
        let entries = self
            .hub
            .store()
            .query(move |conn| {
                let below = match below {
                    Some(below) => below,
                    None => conn.query_row(
                        "SELECT next_seq FROM tasks WHERE id = ?1",
                        [task_id as i64],
                        |r| r.get::<_, i64>(0),
                    )? as u64,
                };
                crate::store::entries(conn, task_id, from, below, STORED_BATCH)
            })
            .await?;
        if entries.is_empty() && below.is_none() {
            self.done = true;
        }
        for (entry, next) in entries {
            self.cursor = next;
            self.pending.push_back(to_event(entry, self.task_id, 0));
        }
        Ok(())
    }
}

fn to_event(entry: Entry, task_id: u64, engine_id: u32) -> TaskEvent {
    match entry {
        Entry::Event(event) => event,
        Entry::Gap(gap) => TaskEvent {
            task_id,
            engine_id,
            seq: gap.first_seq,
            time_us: warren_proto::now_us(),
            kind: Some(task_event::Kind::Gap(gap)),
        },
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(count) = state.streams_by_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.streams_by_client.remove(&self.client);
            }
        }
        state.follow_streams = state.follow_streams.saturating_sub(1);
        if self.attached {
            let done_with = state.tasks.get_mut(&self.task_id).is_some_and(|task| {
                task.follower_at(self.id, None);
                task.is_done_with()
            });
            if done_with {
                state.tasks.remove(&self.task_id);
            } else {
                state.release_ack(self.task_id);
            }
        }
    }
}
