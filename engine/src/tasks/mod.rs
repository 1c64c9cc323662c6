//! The engine's tasks, shared by the runners that produce their output and the session that
//! sends it. They outlive any one connection to the hub.
//!
//! Each task's output waits in its [`Outbox`] until the hub acknowledges it (`output.rs`).

mod output;
mod stdin;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use warren_proto::v1::{
    EngineMessage, TaskFinished, TaskOutput, TaskReport, TaskResult, TaskStarted, engine_message,
};

use crate::control::{Control, ControlTx};
use crate::outbox::Outbox;

/// One task the engine has.
#[derive(Debug)]
struct Entry {
    attempt: u32,
    control: ControlTx,
    started: Option<TaskStarted>,
    finished: Option<TaskResult>,
    outbox: Outbox,
    /// What this session has sent: chunks up to `sent`, and whether the start and end.
    sent: u64,
    started_sent: bool,
    finished_sent: bool,
    /// Started, but not to be told yet: a task that ends within moments is reported with its
    /// start, output and end in one batch (`Tasks::started_quietly`).
    quiet: bool,
    /// Its streamed stdin, if it has one (`stdin.rs`).
    stdin: Option<stdin::StdinState>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: BTreeMap<u64, Entry>,
    /// The tasks that may have something to send: the sender looks at these alone, so its
    /// work follows the news, not the number of tasks (tens of thousands of queued cells).
    news: BTreeSet<u64>,
    connected: bool,
    /// The id of the hub this engine last served.
    hub_id: Option<String>,
}

impl Inner {
    /// The task, if the engine has it in this attempt.
    fn entry(&mut self, task_id: u64, attempt: u32) -> Option<&mut Entry> {
        self.tasks
            .get_mut(&task_id)
            .filter(|e| e.attempt == attempt)
    }
}

/// The engine's tasks and their unacknowledged output.
#[derive(Debug)]
pub struct Tasks {
    inner: Mutex<Inner>,
    /// Woken when there is something new to send.
    pub changed: Notify,
    /// Woken when output may have room again (acknowledged, the hub went away, or a spill job
    /// ended).
    room: Notify,
    memory_limit: usize,
    spill_dir: PathBuf,
    /// The spill file jobs under way.
    io: TaskTracker,
}

impl Tasks {
    /// No tasks yet; each may hold `memory_limit` bytes of output, then spills to `spill_dir`.
    pub fn new(memory_limit: usize, spill_dir: PathBuf) -> Self {
        Self {
            inner: Mutex::default(),
            changed: Notify::new(),
            room: Notify::new(),
            memory_limit,
            spill_dir,
            io: TaskTracker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the engine has this task in this attempt.
    pub fn has(&self, task_id: u64, attempt: u32) -> bool {
        self.lock().entry(task_id, attempt).is_some()
    }

    /// Takes a new task; an older attempt of it is discarded.
    pub fn add(&self, task_id: u64, attempt: u32, control: impl Into<ControlTx>) {
        let outbox = Outbox::new(
            self.memory_limit,
            self.spill_dir
                .join(format!("task-{task_id}-{attempt}.spill")),
        );
        let old = self.lock().tasks.insert(
            task_id,
            Entry {
                attempt,
                control: control.into(),
                started: None,
                finished: None,
                outbox,
                sent: 0,
                started_sent: false,
                finished_sent: false,
                quiet: false,
                stdin: None,
            },
        );
        if let Some(old) = old {
            let _ = old.control.send(Control::Discard);
            self.forget(old);
        }
    }

    /// Sends something to a task's runner.
    pub fn control(&self, task_id: u64, control: Control) {
        if let Some(entry) = self.lock().tasks.get(&task_id) {
            let _ = entry.control.send(control);
        }
    }

    /// Sends something to a task's runner, if the engine has the task in this attempt.
    pub fn control_attempt(&self, task_id: u64, attempt: u32, control: Control) {
        if let Some(entry) = self.lock().entry(task_id, attempt) {
            let _ = entry.control.send(control);
        }
    }

    /// Asks every runner to stop its task because the engine is exiting (`why`).
    pub fn stop_all(&self, why: &str) {
        let reason = format!("stopped: its engine is exiting ({why})");
        for entry in self.lock().tasks.values() {
            let _ = entry.control.send(Control::Stop(reason.clone()));
        }
    }

    /// Kills a task and forgets it without a word to the hub (which has written it off).
    pub fn discard(&self, task_id: u64, attempt: u32) {
        let mut inner = self.lock();
        let gone = match inner.entry(task_id, attempt) {
            Some(_) => inner.tasks.remove(&task_id),
            None => None,
        };
        drop(inner);
        if let Some(entry) = gone {
            let _ = entry.control.send(Control::Discard);
            self.forget(entry);
        }
        self.room.notify_waiters();
    }

    /// Drops a task the engine no longer has; one with a spill file is dropped on a blocking
    /// thread, since that removes the file.
    fn forget(&self, entry: Entry) {
        if entry.outbox.has_spill_file() {
            self.io.spawn_blocking(move || drop(entry));
        }
    }

    /// Changes the task, if the engine has it in this attempt, and says there is news.
    fn update(&self, task_id: u64, attempt: u32, change: impl FnOnce(&mut Entry)) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entry(task_id, attempt) {
            change(entry);
            inner.news.insert(task_id);
        }
        drop(inner);
        self.changed.notify_one();
    }

    /// The task's process started.
    pub fn started(&self, task_id: u64, attempt: u32, started: TaskStarted) {
        self.update(task_id, attempt, |entry| entry.started = Some(started));
    }

    /// The task's process started, but the hub hears of it (and of its output) only at
    /// [`Tasks::announce`] or with its end, whichever comes first. For short tasks that saves
    /// the hub, the database and the client a round of work while the process runs, on a
    /// machine whose cores the process needs too.
    pub fn started_quietly(&self, task_id: u64, attempt: u32, started: TaskStarted) {
        self.update(task_id, attempt, |entry| {
            entry.started = Some(started);
            entry.quiet = true;
        });
    }

    /// Tells the hub of a task started quietly, and of what it has written so far.
    pub fn announce(&self, task_id: u64, attempt: u32) {
        self.update(task_id, attempt, |entry| entry.quiet = false);
    }

    /// The task's process group and start time, once it has started.
    pub fn started_as(&self, task_id: u64, attempt: u32) -> Option<(u32, i64)> {
        let mut inner = self.lock();
        let started = inner.entry(task_id, attempt)?.started?;
        Some((started.pid, started.started_us))
    }

    /// The task ended, or its runner failed; only the first result counts.
    pub fn finished(&self, task_id: u64, attempt: u32, result: TaskResult) {
        self.update(task_id, attempt, |entry| {
            entry.finished.get_or_insert(result);
        });
    }

    /// Whether the hub is connected (output waits) or not (output spills).
    pub fn set_connected(&self, connected: bool) {
        self.lock().connected = connected;
        self.room.notify_waiters();
    }

    /// Starts a session: everything not acknowledged will be sent again; returns what to
    /// report in Hello.
    pub fn begin_session(&self) -> Vec<TaskReport> {
        let mut inner = self.lock();
        inner.news = inner.tasks.keys().copied().collect();
        inner
            .tasks
            .iter_mut()
            .map(|(&task_id, entry)| {
                entry.sent = entry.outbox.acked();
                entry.started_sent = false;
                entry.finished_sent = false;
                if let Some(stdin) = &mut entry.stdin {
                    stdin.resend();
                }
                TaskReport {
                    task_id,
                    attempt: entry.attempt,
                    finished: entry.finished.is_some(),
                    chunks: entry.outbox.produced(),
                }
            })
            .collect()
    }

    /// Up to `max` messages to send now, in order per task: start, output, end.
    pub fn next_messages(&self, max: usize) -> Vec<EngineMessage> {
        let mut inner = self.lock();
        let Inner { tasks, news, .. } = &mut *inner;
        let mut out = Vec::new();
        let mut told = Vec::new();
        for &task_id in news.iter() {
            if out.len() >= max {
                break;
            }
            match tasks.get_mut(&task_id) {
                Some(entry) => {
                    entry.next_messages(task_id, max, &mut out);
                    if !entry.has_news() {
                        told.push(task_id);
                    }
                }
                None => told.push(task_id),
            }
        }
        for task_id in told {
            news.remove(&task_id);
        }
        out
    }

    /// How many tasks the engine still has (running, or ended and not yet acknowledged).
    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of its tasks are still running.
    pub fn running(&self) -> usize {
        self.lock()
            .tasks
            .values()
            .filter(|e| e.finished.is_none())
            .count()
    }
}

impl Entry {
    /// Whether its news waits: started quietly, not yet announced, and not ended.
    fn holding(&self) -> bool {
        self.quiet && self.finished.is_none()
    }

    /// Whether it has something the hub has not been sent yet.
    fn has_news(&self) -> bool {
        if self.holding() {
            return false;
        }
        let all_sent = self.sent >= self.outbox.produced();
        (self.started.is_some() && !self.started_sent)
            || self.stdin.as_ref().is_some_and(stdin::StdinState::has_news)
            || self.outbox.after(self.sent).next().is_some()
            || (self.finished.is_some() && all_sent && !self.finished_sent)
    }

    /// Adds what it has to send to `out`, up to `max` messages in all: start, output, end.
    fn next_messages(&mut self, task_id: u64, max: usize, out: &mut Vec<EngineMessage>) {
        if self.holding() {
            return;
        }
        let attempt = self.attempt;
        if let Some(started) = &self.started
            && !self.started_sent
        {
            self.started_sent = true;
            out.push(message(engine_message::Kind::Started(*started)));
        }
        // Before the end, which the hub would take as the last word on the task.
        if let Some(ack) = self.stdin_news(task_id) {
            out.push(message(ack));
        }
        for chunk in self
            .outbox
            .after(self.sent)
            .take(max.saturating_sub(out.len()))
        {
            out.push(message(engine_message::Kind::Output(TaskOutput {
                task_id,
                stream: chunk.stream,
                data: chunk.data.clone(),
                attempt,
                chunk_seq: chunk.seq,
            })));
            self.sent = chunk.seq;
        }
        let all_sent = self.sent >= self.outbox.produced();
        if let Some(result) = &self.finished
            && all_sent
            && !self.finished_sent
            && out.len() < max
        {
            self.finished_sent = true;
            out.push(message(engine_message::Kind::Finished(TaskFinished {
                task_id,
                result: Some(result.clone()),
                attempt,
                chunks: self.outbox.produced(),
            })));
        }
    }
}

fn message(kind: engine_message::Kind) -> EngineMessage {
    EngineMessage { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::mpsc;
    use warren_proto::v1::engine_message::Kind;

    fn kinds(messages: Vec<EngineMessage>) -> Vec<(u64, &'static str)> {
        messages
            .into_iter()
            .filter_map(|m| match m.kind? {
                Kind::Started(s) => Some((s.task_id, "started")),
                Kind::Finished(f) => Some((f.task_id, "finished")),
                Kind::Output(o) => Some((o.task_id, "output")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_sender_hears_of_the_tasks_with_news_alone_and_of_all_again_in_a_new_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tasks = Tasks::new(1 << 20, dir.path().to_owned());
        let (control, _control) = mpsc::unbounded_channel();
        for id in 1..=10_000 {
            tasks.add(id, 1, control.clone());
        }
        assert!(
            tasks.next_messages(32).is_empty(),
            "queued tasks have no news"
        );
        let started = |id| TaskStarted {
            task_id: id,
            attempt: 1,
            ..TaskStarted::default()
        };
        tasks.started(7_000, 1, started(7_000));
        tasks.started(3, 1, started(3));
        assert_eq!(
            kinds(tasks.next_messages(32)),
            [(3, "started"), (7_000, "started")]
        );
        assert!(tasks.next_messages(32).is_empty(), "told once");
        assert!(tasks.lock().news.is_empty(), "and forgotten once told");

        // Past `max`, the rest waits for the next batch.
        tasks.finished(3, 1, TaskResult::default());
        tasks.finished(7_000, 1, TaskResult::default());
        assert_eq!(kinds(tasks.next_messages(1)), [(3, "finished")]);
        assert_eq!(kinds(tasks.next_messages(1)), [(7_000, "finished")]);

        // A new session: the two are told again, the 9,998 others have nothing to tell.
        tasks.begin_session();
        assert_eq!(
            kinds(tasks.next_messages(32)),
            [
                (3, "started"),
                (3, "finished"),
                (7_000, "started"),
                (7_000, "finished")
            ]
        );
        assert!(tasks.lock().news.is_empty());
    }

    #[tokio::test]
    async fn a_quiet_start_is_told_with_its_output_at_the_announcement_or_with_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tasks = Arc::new(Tasks::new(1 << 20, dir.path().to_owned()));
        tasks.set_connected(true);
        let (control, _control) = mpsc::unbounded_channel();
        let started = |id| TaskStarted {
            task_id: id,
            attempt: 1,
            pid: 42,
            ..TaskStarted::default()
        };
        for id in [1, 2] {
            tasks.add(id, 1, control.clone());
            tasks.started_quietly(id, 1, started(id));
            assert!(
                tasks
                    .output(id, 1, 1, bytes::Bytes::from_static(b"hi"))
                    .await
            );
        }
        assert!(tasks.next_messages(32).is_empty(), "nothing is told yet");
        assert_eq!(
            tasks.started_as(1, 1).map(|(pgid, _)| pgid),
            Some(42),
            "the engine itself knows the group, to kill it if the runner fails"
        );

        // Still running after the quiet time: told then, start first.
        tasks.announce(1, 1);
        assert_eq!(
            kinds(tasks.next_messages(32)),
            [(1, "started"), (1, "output")]
        );

        // Ended within it: everything in one batch, in order.
        tasks.finished(2, 1, TaskResult::default());
        assert_eq!(
            kinds(tasks.next_messages(32)),
            [(2, "started"), (2, "output"), (2, "finished")]
        );
        assert!(tasks.lock().news.is_empty());
    }
}
