//! Following tasks: replay a task's events from a sequence number, then stream it live.
//!
//! A follower reads the task's log through its own cursor, so it never holds up the engine or
//! another follower: it is woken when events arrive and takes them in batches under the lock.

use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;
use tonic::Status;
use warren_proto::v1::{TaskEvent, task_event};

use crate::hub::Hub;
use crate::tasklog::Entry;

/// Events taken from the log per lock.
const BATCH: usize = 64;

/// A stream of one or more tasks' events.
pub type EventStream = BoxStream<'static, Result<TaskEvent, Status>>;

struct Follower {
    hub: Arc<Hub>,
    task_id: u64,
    notify: Arc<Notify>,
    cursor: u64,
    pending: VecDeque<TaskEvent>,
    done: bool,
}

/// Follows one task from `from_seq` until its final event.
pub fn follow(hub: Arc<Hub>, task_id: u64, from_seq: u64) -> Result<EventStream, Status> {
    let notify = {
        let mut state = hub.lock();
        let task = state.task_mut(task_id)?;
        let next = task.log.next_seq();
        if task.state.is_final() && from_seq > next {
            return Err(Status::out_of_range(format!(
                "task {task_id} ended with {next} events (seq 0 to {}); ask for a seq up to {next}",
                next.saturating_sub(1)
            )));
        }
        task.follower_joined();
        task.notify.clone()
    };
    let follower = Follower {
        hub,
        task_id,
        notify,
        cursor: from_seq,
        pending: VecDeque::new(),
        done: false,
    };
    Ok(stream::unfold(follower, next_event).boxed())
}

/// Follows several tasks from their start, interleaving their events as they come.
pub fn follow_all(hub: Arc<Hub>, task_ids: &[u64]) -> Result<EventStream, Status> {
    let streams = task_ids
        .iter()
        .map(|&id| follow(hub.clone(), id, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(stream::select_all(streams).boxed())
}

async fn next_event(mut f: Follower) -> Option<(Result<TaskEvent, Status>, Follower)> {
    loop {
        if let Some(event) = f.pending.pop_front() {
            return Some((Ok(event), f));
        }
        if f.done {
            return None;
        }
        let notify = f.notify.clone();
        // Registered before looking, so an event added after the look still wakes us.
        let notified = notify.notified();
        if let Err(status) = f.fill() {
            f.done = true;
            return Some((Err(status), f));
        }
        if f.pending.is_empty() && !f.done {
            notified.await;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(task) = self.hub.lock().tasks.get_mut(&self.task_id) {
            task.follower_left();
        }
    }
}

impl Follower {
    /// Takes a batch of what is there into `pending`; marks the end once the task is final.
    fn fill(&mut self) -> Result<(), Status> {
        let state = self.hub.lock();
        let Some(task) = state.tasks.get(&self.task_id) else {
            return Err(Status::not_found(format!("task {} is gone", self.task_id)));
        };
        for _ in 0..BATCH {
            let Some((entry, next)) = task.log.read(self.cursor) else {
                break;
            };
            self.cursor = next;
            self.pending.push_back(match entry {
                Entry::Event(event) => event,
                Entry::Gap(gap) => TaskEvent {
                    task_id: task.id,
                    engine_id: task.engine_id,
                    seq: gap.first_seq,
                    time_us: warren_proto::now_us(),
                    kind: Some(task_event::Kind::Gap(gap)),
                },
            });
        }
        if self.pending.is_empty() {
            if task.state.is_final() {
                self.done = true;
            } else if state.stopping {
                return Err(crate::hub::stopping_status());
            }
        }
        Ok(())
    }
}
