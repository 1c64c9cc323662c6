//! What can go wrong in the hub's operations, in the hub's own terms.
//!
//! Operations, checks and the store's reads return a [`HubError`]; the services turn it into a
//! gRPC status in one place (`service::status`), so the code a caller sees for each error is
//! decided there and nowhere else. Every message says what went wrong and what to do.

use std::time::Duration;

use crate::store::QueryError;

/// An operation of the hub refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HubError {
    /// The request is malformed, or asks for what can't be.
    #[error("{0}")]
    Invalid(String),
    /// A bound of the hub's would be passed.
    #[error("{0}")]
    Exhausted(String),
    /// The request does not fit the cluster as it is now.
    #[error("{0}")]
    Precondition(String),
    /// No task has this id.
    #[error("task {id} does not exist{}", newest_task(*newest))]
    UnknownTask {
        /// The id asked for.
        id: u64,
        /// The highest id handed out (0: none yet).
        newest: u64,
    },
    /// No session has this id.
    #[error("session {id} does not exist{}", newest_session(*newest))]
    UnknownSession {
        /// The id asked for.
        id: u64,
        /// The highest id handed out (0: none yet).
        newest: u64,
    },
    /// No live session is in this group.
    #[error(
        "no open session is in group {0}; `warren session ls` lists the sessions and their groups"
    )]
    NoSuchGroup(String),
    /// No connected engine has this id.
    #[error("engine {0} is not registered; `warren engines` lists them")]
    UnknownEngine(u32),
    /// No connected engine has these labels.
    #[error(
        "no registered engine has the labels {0}; `warren engines` lists engines and their labels"
    )]
    NoEngineWithLabels(String),
    /// A replay asked to start past the end of a finished task.
    #[error(
        "task {task_id} ended with {events} events (seq 0 to {}); ask for a seq up to {events}",
        events.saturating_sub(1)
    )]
    PastTheEnd {
        /// The task.
        task_id: u64,
        /// How many events it has.
        events: u64,
    },
    /// The hub is stopping and takes no new work.
    #[error("the hub is shutting down; start it again and retry")]
    Stopping,
    /// The hub stopped while a follower waited on a task that has not ended.
    #[error(
        "the hub is shutting down; task {task_id} has not ended. Follow it again with `warren attach {task_id} --from {cursor}` once a hub is back"
    )]
    StoppedFollowing {
        /// The task followed.
        task_id: u64,
        /// Where the follower had read to.
        cursor: u64,
    },
    /// An engine opened its stream and said nothing.
    #[error("an engine must send Hello within {} s of opening Register", .0.as_secs())]
    NoHello(Duration),
    /// An engine closed its stream before saying who it is.
    #[error("the engine closed Register before Hello")]
    ClosedBeforeHello,
    /// The engine copies no files.
    #[error(
        "engine {0} was started with --no-files: it runs tasks but copies no files; use another engine, or restart it without --no-files"
    )]
    NoFiles(u32),
    /// An engine's part of a copy failed; `code` is the engine's (or the hub's, if the engine
    /// left).
    #[error("engine {engine}: {message}")]
    Copy {
        /// The engine.
        engine: u32,
        /// The gRPC code for the failure.
        code: tonic::Code,
        /// What went wrong and what to do.
        message: String,
    },
    /// One request of a batch was refused, so none was submitted.
    #[error("request {index} of the batch (counting from 0): {source}; nothing was submitted")]
    InBatch {
        /// The request's place in the batch.
        index: usize,
        /// Why it was refused.
        source: Box<HubError>,
    },
    /// The history could not be read.
    #[error(transparent)]
    Store(#[from] QueryError),
}

impl HubError {
    /// A malformed request, with what is wrong and what to send instead.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The refusal of request `index` of a batch.
    pub(crate) fn in_batch(index: usize, err: HubError) -> Self {
        Self::InBatch {
            index,
            source: Box::new(err),
        }
    }

    /// A bound reached, with the flag that sets it and what to do.
    pub(crate) fn exhausted(message: impl Into<String>) -> Self {
        Self::Exhausted(message.into())
    }
}

fn newest_session(newest: u64) -> String {
    if newest == 0 {
        ": this hub has opened no sessions yet".into()
    } else {
        format!(" (sessions are numbered up to {newest}); `warren session ls` lists the open ones")
    }
}

fn newest_task(newest: u64) -> String {
    if newest == 0 {
        ": this hub has no tasks yet".into()
    } else {
        format!(" (or was purged): this hub's tasks are numbered up to {newest}")
    }
}
