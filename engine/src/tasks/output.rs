//! A task's output on its way to the hub: taken from the runner's pumps (who wait while
//! memory is full and the hub connected), and let go of when the hub acknowledges it.
//!
//! The spill file work an outbox asks for runs on blocking threads that [`Tasks`] tracks,
//! never under its lock nor on the async runtime: a job does the write or read, hands the
//! outcome back to the outbox, and goes on with any read the outbox asks for next.

use bytes::Bytes;
use std::sync::Arc;

use super::Tasks;
use crate::outbox::file::{SpillRead, SpillWrite};
use crate::outbox::{Outbox, Pushed};

impl Tasks {
    /// Adds output, waiting while memory is full and the hub connected, or while the spill
    /// file is busy. False if the task has been discarded.
    pub async fn output(
        self: &Arc<Self>,
        task_id: u64,
        attempt: u32,
        stream: i32,
        data: Bytes,
    ) -> bool {
        loop {
            let room = self.room.notified();
            let pushed = {
                let mut inner = self.lock();
                let spill = !inner.connected;
                let Some(entry) = inner.entry(task_id, attempt) else {
                    return false;
                };
                let pushed = entry.outbox.push(stream, data.clone(), spill);
                inner.news.insert(task_id);
                pushed
            };
            let write = match pushed {
                Pushed::Taken => {
                    self.changed.notify_one();
                    return true;
                }
                Pushed::Full => {
                    room.await;
                    continue;
                }
                Pushed::Spill(write) => write,
            };
            let tasks = Arc::clone(self);
            let job = self
                .io
                .spawn_blocking(move || tasks.spill(task_id, attempt, &write));
            match job.await {
                Ok(Ok(())) => return true,
                Ok(Err(err)) => {
                    // Without the spill file the output can't be kept; waiting for the hub
                    // (backpressure) is the only way to lose nothing.
                    tracing::warn!(task = task_id, %err, "cannot spill output; waiting for the hub");
                }
                Err(err) => tracing::warn!(task = task_id, %err, "the spill job failed"),
            }
            self.room.notified().await;
        }
    }

    /// On a blocking thread: writes a chunk to the spill file, then does whatever reads the
    /// outbox asks for next.
    fn spill(&self, task_id: u64, attempt: u32, write: &SpillWrite) -> std::io::Result<()> {
        let outcome = write.run();
        let read = self.in_outbox(task_id, attempt, |outbox| outbox.written(&outcome));
        self.read_back(task_id, attempt, read);
        outcome.map(|_| ())
    }

    /// On a blocking thread: brings spilled output back into memory, as long as the outbox
    /// asks for more.
    fn read_back(&self, task_id: u64, attempt: u32, mut read: Option<SpillRead>) {
        while let Some(job) = read {
            let outcome = job.run();
            if let Err(err) = &outcome {
                tracing::warn!(task = task_id, %err, "cannot read back spilled output");
            }
            read = self.in_outbox(task_id, attempt, |outbox| outbox.refilled(outcome));
        }
    }

    /// Hands a spill job's outcome to the task's outbox, if the task is still here, and wakes
    /// whoever waits for room or for something to send.
    fn in_outbox(
        &self,
        task_id: u64,
        attempt: u32,
        step: impl FnOnce(&mut Outbox) -> Option<SpillRead>,
    ) -> Option<SpillRead> {
        let mut inner = self.lock();
        let next = step(&mut inner.entry(task_id, attempt)?.outbox);
        inner.news.insert(task_id);
        drop(inner);
        self.room.notify_waiters();
        self.changed.notify_one();
        next
    }

    /// The hub has made output (and perhaps the end) of a task safe.
    pub fn ack(self: &Arc<Self>, task_id: u64, attempt: u32, chunk_seq: u64, finished: bool) {
        let mut inner = self.lock();
        let (read, gone) = match inner.entry(task_id, attempt) {
            Some(entry) => {
                let read = entry.outbox.ack(chunk_seq);
                entry.sent = entry.sent.max(chunk_seq);
                let done = finished && entry.finished.is_some();
                // Output acknowledged past what was sent (after a reconnection) may free the end.
                inner.news.insert(task_id);
                (read, done.then(|| inner.tasks.remove(&task_id)).flatten())
            }
            None => (None, None),
        };
        drop(inner);
        if let Some(entry) = gone {
            self.forget(entry);
        }
        if read.is_some() {
            let tasks = Arc::clone(self);
            self.io
                .spawn_blocking(move || tasks.read_back(task_id, attempt, read));
        }
        self.room.notify_waiters();
        self.changed.notify_one();
    }

    /// Waits for the spill file jobs under way (the engine is exiting).
    pub async fn settle_io(&self) {
        self.io.close();
        self.io.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use warren_proto::v1::engine_message::Kind;

    /// Longer than anything here takes; only a stalled outbox reaches it.
    const PATIENCE: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn output_spilled_while_the_hub_is_away_all_comes_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tasks = Arc::new(Tasks::new(8, dir.path().to_owned()));
        let (control, _control) = mpsc::unbounded_channel();
        tasks.add(5, 1, control);
        for n in 0..20u8 {
            assert!(tasks.output(5, 1, 1, Bytes::from(vec![n; 3])).await);
        }
        let spill = dir.path().join("task-5-1.spill");
        assert!(spill.exists(), "output past 8 bytes went to the spill file");

        tasks.set_connected(true);
        tasks.begin_session();
        let mut received = Vec::new();
        let all = tokio::time::timeout(PATIENCE, async {
            while received.len() < 20 {
                let changed = tasks.changed.notified();
                let batch = tasks.next_messages(32);
                let mut last = None;
                for message in batch {
                    if let Some(Kind::Output(out)) = message.kind {
                        received.push((out.chunk_seq, out.data.to_vec()));
                        last = Some(out.chunk_seq);
                    }
                }
                match last {
                    Some(seq) => tasks.ack(5, 1, seq, false),
                    None => changed.await,
                }
            }
        })
        .await;
        assert!(all.is_ok(), "stalled after {} chunks", received.len());
        let expected: Vec<(u64, Vec<u8>)> =
            (0..20u8).map(|n| (u64::from(n) + 1, vec![n; 3])).collect();
        assert_eq!(received, expected);
        tasks.settle_io().await;
        assert!(!spill.exists(), "the spill file goes once it is read back");
    }
}
