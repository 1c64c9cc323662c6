//! Who commits: the writer thread, or the thread that hands over a small transaction that
//! goes at once while nothing else runs (see `group` for when a transaction goes).
//!
//! Whoever takes ops from the queue holds the connection until they are committed, so
//! transactions commit in the order their ops were handed over. Reports are applied in that
//! order too: the writer thread sends its reports to the hub, and a report committed by the
//! handing-over thread goes back to it only when every report sent before it is applied.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Instant;
use tokio::sync::mpsc;

use super::op::{SentReport, Unapplied};
use super::{Committed, Op, checkpoint, group, write};

/// What the store's handles and its writer thread share: the changes handed over, and the
/// connection, held by whoever commits.
#[derive(Debug)]
pub(super) struct Handoff {
    /// The changes handed over and not yet taken.
    pending: Mutex<group::Pending>,
    /// Tells the writer thread that [`Handoff::pending`] has news for it.
    news: Condvar,
    /// The connection, held by whoever commits.
    writer: Mutex<Writer>,
}

impl Handoff {
    /// Starts the writer thread on `writer`.
    pub(super) fn start(writer: Writer) -> std::io::Result<Arc<Self>> {
        let handoff = Arc::new(Self {
            pending: Mutex::default(),
            news: Condvar::new(),
            writer: Mutex::new(writer),
        });
        let for_thread = handoff.clone();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer_thread(&for_thread))?;
        Ok(handoff)
    }

    fn pending(&self) -> MutexGuard<'_, group::Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `op` and sees that it is committed (see `Store::write`); the report when this
    /// thread committed it and is to apply it.
    pub(super) fn hand_over(&self, op: Op, alone: impl FnOnce() -> bool) -> Option<Committed> {
        let next = self.pending().push(op, Instant::now());
        if next == group::Next::Wait {
            return None;
        }
        if next == group::Next::Here
            && alone()
            && let Here::Committed(report) = self.commit_here()
        {
            return report;
        }
        self.news.notify_one();
        None
    }

    /// Commits what waits on this thread if the writer thread is idle and it is still small.
    fn commit_here(&self) -> Here {
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Here::Left,
        };
        let ops = {
            let mut pending = self.pending();
            if !pending.small() {
                return Here::Left;
            }
            pending.take()
        };
        Here::Committed(writer.commit(ops, Report::Back))
    }
}

/// What [`Handoff::commit_here`] did.
enum Here {
    /// Committed, with the report if it is handed back.
    Committed(Option<Committed>),
    /// Left to the writer thread.
    Left,
}

/// Where a commit's report goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    /// To the hub's receiver.
    Sent,
    /// Back to the thread that committed, unless a report sent earlier is still unapplied.
    Back,
}

/// Closes the store's queue when the last handle is dropped.
#[derive(Debug)]
pub(super) struct Closer(pub(super) Arc<Handoff>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.pending().close();
        self.0.news.notify_one();
    }
}

/// The connection and where its commits are reported.
#[derive(Debug)]
pub(super) struct Writer {
    conn: rusqlite::Connection,
    committed: mpsc::UnboundedSender<Committed>,
    unapplied: Arc<Unapplied>,
    /// The database's name, for errors.
    name: String,
    checkpointer: Option<checkpoint::Nudger>,
}

impl Writer {
    /// A writer on `conn` for the database called `name`, reporting on `committed`.
    pub(super) fn new(
        conn: rusqlite::Connection,
        committed: mpsc::UnboundedSender<Committed>,
        name: String,
        checkpointer: Option<checkpoint::Nudger>,
    ) -> Self {
        Self {
            conn,
            committed,
            unapplied: Arc::default(),
            name,
            checkpointer,
        }
    }

    /// Applies `ops` in one transaction, reports it as `report` says, then runs the reads
    /// among them. Returns the report if it is handed back.
    fn commit(&mut self, ops: Vec<Op>, report_to: Report) -> Option<Committed> {
        if ops.is_empty() {
            return None;
        }
        let mut queries = Vec::new();
        let mut report = Committed::default();
        let result = write::apply_batch(&mut self.conn, ops, &mut queries, &mut report);
        if let Err(err) = result {
            // Nothing of this batch was acknowledged; engines still hold the output. Stopping
            // lets a restarted hub pick everything up again instead of going on half-blind.
            let name = &self.name;
            tracing::error!(database = %name, %err, "cannot commit to the task database; the hub stops");
            eprintln!("warren-hub: cannot commit to the task database {name}: {err}");
            std::process::exit(70);
        }
        if let Some(checkpointer) = &mut self.checkpointer {
            checkpointer.committed(report.row_bytes);
        }
        #[cfg(test)]
        {
            report.thread = Some(std::thread::current().id());
        }
        let report = if report_to == Report::Back && self.unapplied.none() {
            Some(report)
        } else {
            report.sent = Some(SentReport::new(&self.unapplied));
            let _ = self.committed.send(report);
            None
        };
        for query in queries {
            query(&mut self.conn);
        }
        report
    }
}

/// The writer thread: waits until what is pending is due (see `group`), then commits it in one
/// transaction, until the last handle is gone and nothing waits.
fn writer_thread(handoff: &Handoff) {
    loop {
        let mut pending = handoff.pending();
        loop {
            match pending.due() {
                None if pending.finished() => return,
                None => {
                    pending = handoff
                        .news
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(due) => {
                    let now = Instant::now();
                    if due <= now {
                        break;
                    }
                    pending = handoff
                        .news
                        .wait_timeout(pending, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        drop(pending);
        // The connection first, then the ops: whoever takes ops holds the connection until
        // they are committed, so transactions commit in the order their ops were handed over.
        let mut writer = handoff
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ops = handoff.pending().take();
        writer.commit(ops, Report::Sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Location, Store};
    use std::time::Duration;

    fn lazy(task_id: u64) -> Op {
        Op::Dependencies {
            task_id,
            after: vec![],
            after_ok: vec![],
        }
    }

    fn urgent() -> Op {
        Op::ForgetEngines(vec![])
    }

    /// The next report, waiting at most a minute (a hung writer fails the test).
    async fn next_report(commits: &mut mpsc::UnboundedReceiver<Committed>) -> Option<Committed> {
        tokio::time::timeout(Duration::from_secs(60), commits.recv())
            .await
            .expect("the writer reported within a minute")
    }

    #[tokio::test]
    async fn a_small_change_someone_waits_for_is_committed_before_write_returns() {
        let (store, _, mut commits) = Store::open(Location::Memory).expect("open");
        assert!(store.write(vec![lazy(1)], || true).is_none());
        // No waiting at all: `write` returns the report, for the caller to apply.
        let report = store
            .write(vec![urgent()], || true)
            .expect("committed on this thread and handed back");
        assert_eq!(report.thread, Some(std::thread::current().id()));
        assert!(report.sent.is_none());
        assert!(
            commits.try_recv().is_err(),
            "one transaction for both, not sent"
        );
    }

    #[tokio::test]
    async fn a_report_is_handed_back_only_once_every_report_sent_before_it_is_applied() {
        let (store, _, mut commits) = Store::open(Location::Memory).expect("open");
        assert!(store.write(vec![urgent()], || false).is_none());
        let first = next_report(&mut commits).await.expect("sent by the writer");
        // The writer thread may hold the connection a moment after sending its report.
        for _ in 0..6000 {
            if store.handoff.writer.try_lock().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Not applied yet (held): the next report must follow it through the receiver.
        assert!(store.write(vec![urgent()], || true).is_none());
        let second = commits
            .try_recv()
            .expect("committed on this thread and sent");
        assert_eq!(second.thread, Some(std::thread::current().id()));
        drop((first, second));
        let third = store.write(vec![urgent()], || true);
        assert!(third.is_some(), "every earlier report applied: handed back");
    }

    #[tokio::test]
    async fn while_other_tasks_run_the_writer_thread_commits_what_someone_waits_for() {
        let (store, _, mut commits) = Store::open(Location::Memory).expect("open");
        store.write(vec![urgent()], || false);
        let report = next_report(&mut commits).await.expect("a report");
        assert_ne!(report.thread, Some(std::thread::current().id()));
        assert!(report.thread.is_some());
    }

    #[tokio::test]
    async fn lazy_changes_are_left_to_the_writer_thread_and_committed_after_the_linger() {
        let (store, _, mut commits) = Store::open(Location::Memory).expect("open");
        let start = Instant::now();
        store.write(vec![lazy(1)], || true);
        store.write(vec![lazy(2)], || true);
        assert!(
            commits.try_recv().is_err(),
            "nobody waits: not committed at once"
        );
        next_report(&mut commits).await.expect("a report");
        assert!(
            start.elapsed() >= group::LINGER,
            "committed before the linger was over"
        );
        assert!(commits.try_recv().is_err(), "one transaction for both");
    }

    #[tokio::test]
    async fn a_read_runs_on_the_writer_thread_after_the_changes_before_it() {
        let (store, _, _commits) = Store::open(Location::Memory).expect("open");
        // Lazy: it waits for company, and the read must not overtake it.
        store.write(
            vec![Op::Dependencies {
                task_id: 7,
                after: vec![3],
                after_ok: vec![],
            }],
            || true,
        );
        let (deps, thread) = store
            .query(|conn| {
                let deps: i64 =
                    conn.query_row("SELECT count(*) FROM task_deps", [], |r| r.get(0))?;
                Ok((deps, std::thread::current().name().map(str::to_owned)))
            })
            .await
            .expect("read");
        assert_eq!(
            deps, 1,
            "the read ran before the change handed over before it"
        );
        assert_eq!(thread.as_deref(), Some("warren-store"));
    }

    #[tokio::test]
    async fn dropping_the_last_handle_commits_what_waits_and_ends_the_writer() {
        let (store, _, mut commits) = Store::open(Location::Memory).expect("open");
        let clone = store.clone();
        store.write(vec![lazy(1)], || true);
        drop(store);
        clone.write(vec![lazy(2)], || true);
        drop(clone);
        next_report(&mut commits)
            .await
            .expect("what waited was committed");
        assert!(
            next_report(&mut commits).await.is_none(),
            "the writer ended once nothing waited"
        );
    }
}
