//! Group commit: which changes share a transaction.
//!
//! A transaction has a fixed cost (its pages written to the WAL, each index it touches
//! updated), paid by the writer thread on a machine whose cores also run the engines' tasks.
//! Most changes have nobody waiting for their commit: a task queued, placed or started is
//! shown at once. Those may wait, up to [`LINGER`], for company: typically the end of the
//! same short task, so that a task costs one transaction instead of three. A change someone
//! waits for (an end to show, a read) is committed at once, with whatever waits beside it.
//!
//! Output is shown at once too; only its acknowledgement to the engine and its room in the
//! hub's output budget wait for the commit. A small chunk (a keystroke's echo, a line of a
//! chatty task) may therefore wait for company as well: a transaction per keystroke on a
//! two-core machine takes the core the echo needs. Once [`URGENT_OUTPUT`] bytes wait, they go
//! at once, so a bulk stream is acknowledged as fast as before.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Op;

/// How long a change nobody waits for may wait for others to share its transaction. A hub
/// killed outright loses at most this much of such changes (an engine reports its tasks again
/// when it registers with the next hub, and sends again output not acknowledged); a task
/// that ends never waits, nor does [`URGENT_OUTPUT`] of output.
pub(super) const LINGER: Duration = Duration::from_millis(2);

/// Ops taken into one transaction at most.
pub(super) const MAX_BATCH: usize = 8192;

/// Output bytes that are committed at once: one pipe's worth, what a bulk stream sends in a
/// chunk. Less may wait up to [`LINGER`] for company.
pub(super) const URGENT_OUTPUT: u64 = 64 << 10;

impl Op {
    /// Whether this change alone goes at once (see [`Gathered::add`]).
    #[cfg(test)]
    fn is_urgent(&self) -> bool {
        let mut alone = Gathered::default();
        alone.add(self);
        alone.urgent
    }

    /// Whether it holds a change that is shown, or answered, only once committed.
    fn is_awaited(&self) -> bool {
        match self {
            Self::Task(row) => row.state.is_final(),
            Self::Event { .. }
            | Self::Attempt { .. }
            | Self::Dependencies { .. }
            | Self::Output { .. } => false,
            Self::Finish { .. }
            | Self::Engine { .. }
            | Self::ForgetEngines(_)
            | Self::Session(_)
            | Self::Query(_) => true,
            Self::Batch(ops) => ops.iter().any(Op::is_awaited),
        }
    }

    /// The output bytes this change holds until it is committed.
    fn output_bytes(&self) -> u64 {
        match self {
            Self::Output { bytes, .. } => *bytes,
            Self::Batch(ops) => ops.iter().map(Op::output_bytes).sum(),
            _ => 0,
        }
    }
}

/// What the ops gathered for a transaction so far ask for.
#[derive(Debug, Default)]
struct Gathered {
    /// The output bytes they hold.
    output: u64,
    /// Whether they go at once: someone waits for one of them, or [`URGENT_OUTPUT`] bytes of
    /// output wait, in one chunk or in all.
    urgent: bool,
}

impl Gathered {
    fn add(&mut self, op: &Op) {
        self.output += op.output_bytes();
        self.urgent |= op.is_awaited() || self.output >= URGENT_OUTPUT;
    }
}

/// The ops for the next transaction, starting with `first`: everything already queued, and,
/// while none of it is urgent, whatever comes within `linger` of `first`.
pub(super) fn gather(first: Op, rx: &Receiver<Op>, linger: Duration) -> Vec<Op> {
    let deadline = Instant::now() + linger;
    let mut gathered = Gathered::default();
    gathered.add(&first);
    let mut ops = vec![first];
    while ops.len() < MAX_BATCH {
        let next = match rx.try_recv() {
            Ok(op) => op,
            Err(_) if gathered.urgent => break,
            Err(_) => match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            },
        };
        gathered.add(&next);
        ops.push(next);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn lazy() -> Op {
        Op::Dependencies {
            task_id: 1,
            after: vec![],
            after_ok: vec![],
        }
    }

    fn urgent() -> Op {
        Op::ForgetEngines(vec![])
    }

    fn output(bytes: u64) -> Op {
        Op::Output {
            task_id: 1,
            event: None,
            gap: None,
            progress: crate::model::Progress::default(),
            bytes,
        }
    }

    #[test]
    fn small_output_waits_for_company_and_a_pipe_full_does_not() {
        assert!(!output(1).is_urgent());
        assert!(!output(URGENT_OUTPUT - 1).is_urgent());
        assert!(output(URGENT_OUTPUT).is_urgent());
        assert!(Op::Batch(vec![output(URGENT_OUTPUT / 2), output(URGENT_OUTPUT / 2)]).is_urgent());
    }

    #[test]
    fn small_output_goes_at_once_when_enough_of_it_waits() {
        let (tx, rx) = channel();
        tx.send(output(URGENT_OUTPUT / 2)).expect("send");
        // A day of linger: were the output to wait for it, the test would hang.
        let ops = gather(output(URGENT_OUTPUT / 2), &rx, Duration::from_secs(86_400));
        assert_eq!(ops.len(), 2);
        // The sender is still there: only the bytes ended the wait.
        drop(tx);
    }

    #[test]
    fn a_keystroke_of_output_waits_out_the_linger() {
        let (tx, rx) = channel();
        let linger = Duration::from_millis(20);
        let start = Instant::now();
        let ops = gather(output(1), &rx, linger);
        assert!(
            start.elapsed() >= linger,
            "it went before the linger was over"
        );
        assert_eq!(ops.len(), 1);
        drop(tx);
    }

    #[test]
    fn urgency_looks_inside_batches() {
        assert!(!lazy().is_urgent());
        assert!(urgent().is_urgent());
        assert!(!Op::Batch(vec![lazy(), lazy()]).is_urgent());
        assert!(Op::Batch(vec![lazy(), Op::Batch(vec![urgent()])]).is_urgent());
    }

    #[test]
    fn an_urgent_op_goes_with_what_is_queued_without_waiting() {
        let (tx, rx) = channel();
        tx.send(lazy()).expect("send");
        tx.send(urgent()).expect("send");
        // A day of linger: were the urgent op to wait, the test would hang.
        let ops = gather(urgent(), &rx, Duration::from_secs(86_400));
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn lazy_ops_wait_for_an_urgent_one_and_go_with_it() {
        let (tx, rx) = channel();
        let (done_tx, done_rx) = channel::<()>();
        let sender = std::thread::spawn(move || {
            tx.send(lazy()).expect("send");
            tx.send(urgent()).expect("send");
            // The channel stays open until the transaction is gathered: only the urgent op
            // can end the wait.
            let _ = done_rx.recv();
        });
        let hour = Duration::from_secs(3600);
        let start = Instant::now();
        let ops = gather(lazy(), &rx, hour);
        assert!(start.elapsed() < hour, "the urgent op did not end the wait");
        assert_eq!(ops.len(), 3, "{ops:?}");
        assert!(ops[2].is_urgent());
        done_tx.send(()).expect("done");
        sender.join().expect("sender");
    }

    #[test]
    fn lazy_ops_alone_go_once_the_linger_is_over() {
        let (tx, rx) = channel();
        tx.send(lazy()).expect("send");
        let ops = gather(lazy(), &rx, Duration::from_millis(1));
        assert_eq!(ops.len(), 2);
        // The sender is still there: only the linger ended the wait.
        drop(tx);
    }

    #[test]
    fn a_transaction_holds_at_most_max_batch_ops() {
        let (tx, rx) = channel();
        for _ in 0..MAX_BATCH + 5 {
            tx.send(urgent()).expect("send");
        }
        assert_eq!(gather(urgent(), &rx, LINGER).len(), MAX_BATCH);
        // The rest, and the first op given.
        assert_eq!(gather(urgent(), &rx, LINGER).len(), 7);
    }
}
