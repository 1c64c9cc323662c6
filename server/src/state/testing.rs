//! Helpers for the state's unit tests: a hub in memory on a hand-moved clock, engines that
//! register with it, requests, and what the engines are told.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use warren_proto::v1::{
    EngineMessage, ExecuteRequest, Goodbye, Hello, HubMessage, OutputStream, Targets, TaskFinished,
    TaskOutput, TaskReport, TaskResult, TaskSpec, TaskStarted, TaskState, engine_message,
    hub_message, targets, task_spec,
};

use super::{Clock, Hub, Settings};
use crate::model::Submitter;
use crate::store::{Location, Store};

/// What an engine is sent.
pub(super) type Inbox = mpsc::UnboundedReceiver<HubMessage>;

/// A hub with an in-memory history and small settings, on a manual clock.
pub(super) fn hub(settings: Settings) -> (Arc<Hub>, Clock) {
    let (store, recovered, commits) = Store::open(Location::Memory).expect("store");
    let clock = Clock::manual();
    let hub = Hub::with_clock(settings, store, recovered, clock.clone());
    // Commit reports are applied as they come, as in the running hub, while the hub lives.
    let applier = Arc::downgrade(&hub);
    std::thread::spawn(move || {
        let mut commits = commits;
        while let Some(report) = commits.blocking_recv() {
            match applier.upgrade() {
                Some(hub) => hub.committed(report),
                None => break,
            }
        }
    });
    (hub, clock)
}

/// A connected engine as a test drives it.
pub(super) struct TestEngine {
    pub(super) id: u32,
    pub(super) connection: u64,
    pub(super) inbox: Inbox,
}

impl TestEngine {
    /// Registers an engine with this uuid, slots and labels.
    pub(super) fn register(hub: &Hub, uuid: &str, slots: u32, labels: &[(&str, &str)]) -> Self {
        Self::register_with(hub, uuid, slots, labels, &[])
    }

    /// Registers an engine that still has these tasks (id, attempt) from before.
    pub(super) fn register_with(
        hub: &Hub,
        uuid: &str,
        slots: u32,
        labels: &[(&str, &str)],
        reports: &[(u64, u32)],
    ) -> Self {
        let (tx, inbox) = mpsc::unbounded_channel();
        let hello = Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: uuid.into(),
            slots,
            labels: pairs(labels),
            tasks: reports
                .iter()
                .map(|&(task_id, attempt)| TaskReport {
                    task_id,
                    attempt,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let (id, connection) = hub.register_engine(hello, tx).expect("register");
        Self {
            id,
            connection,
            inbox,
        }
    }

    /// The tasks assigned to it since last asked.
    pub(super) fn assigned(&mut self) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Ok(message) = self.inbox.try_recv() {
            if let Some(hub_message::Kind::Assign(assign)) = message.kind {
                ids.push(assign.task_id);
            }
        }
        ids
    }

    /// Takes a task just assigned to it (and only that) and starts it, in `attempt`.
    pub(super) fn run(&mut self, hub: &Hub, task_id: u64, attempt: u32) {
        assert_eq!(self.assigned(), vec![task_id], "assigned here");
        self.start(hub, task_id, attempt);
    }

    /// Says a task started.
    pub(super) fn start(&self, hub: &Hub, task_id: u64, attempt: u32) {
        let started = engine_message::Kind::Started(TaskStarted {
            task_id,
            pid: 4242,
            started_us: 1,
            attempt,
        });
        self.send(hub, started);
    }

    /// Sends a task's (first attempt's) output chunk `chunk_seq`: `len` bytes of stdout.
    pub(super) fn output(&self, hub: &Hub, task_id: u64, chunk_seq: u64, len: usize) {
        let output = engine_message::Kind::Output(TaskOutput {
            task_id,
            stream: OutputStream::Stdout as i32,
            data: vec![b'x'; len].into(),
            attempt: 1,
            chunk_seq,
        });
        self.send(hub, output);
    }

    /// Says a task (in its first attempt) succeeded.
    pub(super) fn finish(&self, hub: &Hub, task_id: u64) {
        let finished = engine_message::Kind::Finished(TaskFinished {
            task_id,
            attempt: 1,
            chunks: 0,
            result: Some(TaskResult {
                state: TaskState::Succeeded as i32,
                ..Default::default()
            }),
        });
        self.send(hub, finished);
    }

    /// Its stream ends.
    pub(super) fn leave(self, hub: &Hub) {
        hub.engine_gone(self.id, self.connection, "closed its stream");
    }

    /// Says goodbye, as an engine stopped by a signal does.
    pub(super) fn goodbye(&self, hub: &Hub, reason: &str) {
        let goodbye = engine_message::Kind::Goodbye(Goodbye {
            reason: reason.into(),
        });
        self.send(hub, goodbye);
    }

    /// Says it is alive.
    pub(super) fn heartbeat(&self, hub: &Hub) {
        self.send(hub, engine_message::Kind::Heartbeat(Default::default()));
    }

    /// Sends the hub a message.
    pub(super) fn send(&self, hub: &Hub, kind: engine_message::Kind) {
        let message = EngineMessage { kind: Some(kind) };
        hub.engine_message(self.id, self.connection, message, 0);
    }
}

fn pairs(labels: &[(&str, &str)]) -> HashMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A request for one task on any engine with these labels, allowing `retries`.
pub(super) fn job(labels: &[(&str, &str)], retries: u32) -> ExecuteRequest {
    ExecuteRequest {
        spec: Some(TaskSpec {
            command: Some(task_spec::Command::Script("true".into())),
            ..Default::default()
        }),
        targets: Some(Targets {
            selector: Some(targets::Selector::Any(Default::default())),
            engine_labels: pairs(labels),
        }),
        retries,
        ..Default::default()
    }
}

/// Submits one task for any engine, allowing `retries`; its id.
pub(super) fn submit(hub: &Hub, retries: u32) -> u64 {
    let ids = hub
        .submit(job(&[], retries), Submitter::default())
        .expect("submit");
    ids[0]
}

/// Moves the clock on and sweeps, as the liveness loop does once per heartbeat.
pub(super) fn sweep_after(hub: &Hub, clock: &Clock, ms: u64) {
    clock.advance(Duration::from_millis(ms));
    hub.sweep();
}

/// Checks the state decided for a task, and that its reason says `why`.
pub(super) fn assert_decided(hub: &Hub, task_id: u64, state: TaskState, why: &str) {
    let (decided, reason) = decided(hub, task_id).unwrap_or_else(|| from_history(hub, task_id));
    assert_eq!(decided, state, "{reason}");
    assert!(reason.contains(why), "{reason:?} does not say {why:?}");
}

/// A task's state and reason from the history, once its end was committed and it left memory
/// (which the commit thread may do at any moment).
fn from_history(hub: &Hub, task_id: u64) -> (TaskState, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let info = runtime
        .block_on(hub.get_task(task_id))
        .expect("the task is in memory or in the history");
    (info.state(), info.reason)
}

/// A task's state wherever it is: in memory, or in the history.
pub(super) fn state_of(hub: &Hub, task_id: u64) -> TaskState {
    decided(hub, task_id)
        .unwrap_or_else(|| from_history(hub, task_id))
        .0
}

/// The state decided for a task in memory (shown once committed), and why.
pub(super) fn decided(hub: &Hub, task_id: u64) -> Option<(TaskState, String)> {
    hub.view(|state| {
        state
            .tasks
            .get(&task_id)
            .map(|t| (t.row.state, t.row.reason.clone()))
    })
}
