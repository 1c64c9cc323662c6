//! The reads the hub asks of its history while it serves. Each runs on the writer's
//! connection after every change handed over before it, so a caller always reads what it wrote.

use tokio::sync::oneshot;
use warren_proto::v1::TaskInfo;

use super::{ListFilter, ListPage, Op, PurgeSelector, Store, purge, read, replay, sessions};
use crate::model::{Entry, SessionRow};

/// Why a read of the history gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    /// SQLite refused or failed the read.
    #[error("reading the task database failed: {0}")]
    Failed(#[from] rusqlite::Error),
    /// The writer has stopped: the hub is on its way out.
    #[error("the hub is shutting down")]
    Stopped,
}

impl Store {
    /// Runs a read on the writer's connection, after every change handed over before it.
    pub(crate) async fn query<T, F>(&self, read: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // A read always runs on the writer thread: whether others run does not matter.
        let read = Op::Query(Box::new(move |conn| {
            let _ = reply.send(read(conn));
        }));
        self.handoff.hand_over(read, || false);
        match answer.await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(QueryError::Stopped),
        }
    }

    /// Waits until every change handed over so far is committed.
    pub(crate) async fn settled(&self) -> Result<(), QueryError> {
        self.query(|_| Ok(())).await
    }

    /// One task's record, if the history has it.
    pub(crate) async fn task_info(&self, task_id: u64) -> Result<Option<TaskInfo>, QueryError> {
        self.query(move |conn| read::task_info(conn, task_id)).await
    }

    /// What the history says of each of these tasks (not in the hub's memory).
    pub(crate) async fn past_tasks(
        &self,
        ids: Vec<u64>,
    ) -> Result<std::collections::HashMap<u64, super::PastTask>, QueryError> {
        self.query(move |conn| super::deps::past(conn, &ids)).await
    }

    /// A page of tasks, newest first.
    pub(crate) async fn list(&self, filter: ListFilter) -> Result<ListPage, QueryError> {
        self.query(move |conn| read::list(conn, &filter)).await
    }

    /// A task's kept events and recorded gaps from `from_seq`, up to about `max_bytes`, each
    /// with the cursor after it: below `below_seq`, or for a task no longer live (`None`), up
    /// to its end.
    pub(crate) async fn entries(
        &self,
        task_id: u64,
        from_seq: u64,
        below_seq: Option<u64>,
        max_bytes: usize,
    ) -> Result<Vec<(Entry, u64)>, QueryError> {
        self.query(move |conn| {
            let below = match below_seq {
                Some(below) => below,
                None => read::next_seq(conn, task_id)?,
            };
            replay::entries(conn, task_id, from_seq, below, max_bytes)
        })
        .await
    }

    /// Deletes finished tasks; returns how many, and the kept output bytes that went with them.
    pub(crate) async fn purge(&self, selector: PurgeSelector) -> Result<(u64, u64), QueryError> {
        self.query(move |conn| purge::purge(conn, &selector)).await
    }

    /// Deletes finished tasks older than `max_age_us` at `now_us`, then the oldest while their
    /// kept output is over `max_bytes`; returns how many, and their kept output bytes.
    pub(crate) async fn retain(
        &self,
        now_us: i64,
        max_age_us: i64,
        max_bytes: u64,
    ) -> Result<(u64, u64), QueryError> {
        self.query(move |conn| purge::enforce_retention(conn, now_us, max_age_us, max_bytes))
            .await
    }

    /// Closed sessions, newest first (of `group` only, if not empty); at most a thousand
    /// (live sessions are answered from memory).
    pub(crate) async fn closed_sessions(
        &self,
        group: String,
    ) -> Result<Vec<SessionRow>, QueryError> {
        self.query(move |conn| sessions::closed(conn, &group)).await
    }

    /// One session's row, if the history has it.
    pub(crate) async fn session(&self, id: u64) -> Result<Option<SessionRow>, QueryError> {
        self.query(move |conn| sessions::get(conn, id)).await
    }
}
