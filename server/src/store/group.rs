//! Group commit: which changes share a transaction, and when it goes.
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
//!
//! A transaction that goes at once and is [small](Pending::small) is committed by the thread
//! that handed the change over when nothing else runs and the writer thread is not in a
//! transaction of its own: handing it to a sleeping thread and hearing back costs two
//! wake-ups, which on an idle machine take longer than the commit itself (see `Store::write`).
//! While other tasks run, that delay is what gathers their ends into the same transaction
//! (like PostgreSQL's `commit_delay`, which waits only with `commit_siblings` at work), so the
//! writer thread commits then.

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

/// Handovers a transaction may hold and still be committed by the thread that completes it:
/// a few tasks' changes, a commit of a few dozen microseconds.
const SMALL_BATCH: usize = 16;

impl Op {
    /// Whether this change alone goes at once (see [`Gathered::add`]).
    #[cfg(test)]
    fn is_urgent(&self) -> bool {
        let mut alone = Gathered::default();
        alone.add(self);
        alone.urgent
    }

    /// Whether it is a change that is shown, or answered, only once committed (a batch's ops
    /// are asked one by one: see [`Gathered::add`]).
    fn is_awaited(&self) -> bool {
        match self {
            Self::Task(row) => row.state.is_final(),
            Self::Event { .. }
            | Self::Attempt { .. }
            | Self::Dependencies { .. }
            | Self::Output { .. }
            | Self::Batch(_) => false,
            Self::Finish { .. }
            | Self::Engine { .. }
            | Self::ForgetEngines(_)
            | Self::Session(_)
            | Self::Query(_) => true,
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
    /// Whether a read is among them.
    reads: bool,
}

impl Gathered {
    /// Adds `op`, or each op of a batch, in one walk.
    fn add(&mut self, op: &Op) {
        match op {
            Op::Batch(ops) => ops.iter().for_each(|op| self.add(op)),
            Op::Output { bytes, .. } => self.output += bytes,
            Op::Query(_) => self.reads = true,
            _ => {}
        }
        self.urgent |= op.is_awaited() || self.output >= URGENT_OUTPUT;
    }
}

/// The changes handed over and not yet taken into a transaction, in order.
#[derive(Debug, Default)]
pub(super) struct Pending {
    ops: Vec<Op>,
    gathered: Gathered,
    /// When the first of them was handed over: the linger runs from there.
    since: Option<Instant>,
    /// No more changes will come (the last handle to the store is gone).
    closed: bool,
}

/// Who should commit what waits, after a handover.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Nobody yet: the writer thread, already waiting for the linger to end, will.
    Wait,
    /// The writer thread: wake it.
    Writer,
    /// The transaction goes now and is small: if nothing else runs, the thread that handed it
    /// over may commit it (else the writer thread: wake it).
    Here,
}

impl Pending {
    /// Hands `op` over at `now` and says who should commit what waits.
    pub(super) fn push(&mut self, op: Op, now: Instant) -> Next {
        let (was_empty, was_due) = (self.ops.is_empty(), self.goes_at_once());
        self.gathered.add(&op);
        self.ops.push(op);
        self.since.get_or_insert(now);
        let now_due = !was_due && self.goes_at_once();
        if now_due && self.small() {
            Next::Here
        } else if was_empty || now_due {
            // The writer waits without a deadline while nothing waits, and with the linger's
            // deadline while lazy changes wait: only a first change or urgency is news to it.
            Next::Writer
        } else {
            Next::Wait
        }
    }

    /// Whether what waits goes without waiting out the linger.
    fn goes_at_once(&self) -> bool {
        self.gathered.urgent || self.ops.len() >= MAX_BATCH || (self.closed && !self.ops.is_empty())
    }

    /// When what waits should go: `None` while nothing waits.
    pub(super) fn due(&self) -> Option<Instant> {
        let since = self.since?;
        Some(if self.goes_at_once() {
            since
        } else {
            since + LINGER
        })
    }

    /// Whether the whole of what waits is cheap enough to commit on the thread that completes
    /// it: a few handovers, no read (a read may scan the whole history) and less than a
    /// pipe's worth of output (bulk output goes to segment files, on the writer thread).
    pub(super) fn small(&self) -> bool {
        self.ops.len() <= SMALL_BATCH
            && !self.gathered.reads
            && self.gathered.output < URGENT_OUTPUT
    }

    /// Takes the ops of the next transaction: the first [`MAX_BATCH`] of what waits.
    pub(super) fn take(&mut self) -> Vec<Op> {
        if self.ops.len() <= MAX_BATCH {
            self.gathered = Gathered::default();
            self.since = None;
            return std::mem::take(&mut self.ops);
        }
        let rest = self.ops.split_off(MAX_BATCH);
        let taken = std::mem::replace(&mut self.ops, rest);
        // What stays has waited as long as what goes.
        self.gathered = Gathered::default();
        for op in &self.ops {
            self.gathered.add(op);
        }
        taken
    }

    /// Notes that no more changes will come: what waits goes at once.
    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    /// Whether no more changes will come and none waits: the writer's work is done.
    pub(super) fn finished(&self) -> bool {
        self.closed && self.ops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn read() -> Op {
        Op::Query(Box::new(|_| {}))
    }

    #[test]
    fn small_output_waits_for_company_and_a_pipe_full_does_not() {
        assert!(!output(1).is_urgent());
        assert!(!output(URGENT_OUTPUT - 1).is_urgent());
        assert!(output(URGENT_OUTPUT).is_urgent());
        assert!(Op::Batch(vec![output(URGENT_OUTPUT / 2), output(URGENT_OUTPUT / 2)]).is_urgent());
    }

    #[test]
    fn urgency_looks_inside_batches() {
        assert!(!lazy().is_urgent());
        assert!(urgent().is_urgent());
        assert!(!Op::Batch(vec![lazy(), lazy()]).is_urgent());
        assert!(Op::Batch(vec![lazy(), Op::Batch(vec![urgent()])]).is_urgent());
    }

    #[test]
    fn lazy_ops_wait_out_the_linger_from_the_first_of_them() {
        let mut pending = Pending::default();
        let start = Instant::now();
        assert_eq!(pending.due(), None);
        // The first wakes the writer, which then sleeps until the linger is over.
        assert_eq!(pending.push(lazy(), start), Next::Writer);
        assert_eq!(pending.push(lazy(), start + LINGER / 2), Next::Wait);
        assert_eq!(pending.due(), Some(start + LINGER));
        assert_eq!(pending.take().len(), 2);
        assert_eq!(pending.due(), None);
    }

    #[test]
    fn an_urgent_op_takes_what_waits_at_once_and_may_be_committed_by_its_sender() {
        let mut pending = Pending::default();
        let start = Instant::now();
        pending.push(lazy(), start);
        assert_eq!(pending.push(urgent(), start + LINGER / 4), Next::Here);
        assert_eq!(pending.due(), Some(start), "due at once");
        // Once due, later changes are the writer's news no more: they go with the rest.
        assert_eq!(pending.push(lazy(), start + LINGER / 2), Next::Wait);
        assert_eq!(pending.take().len(), 3);
        // Alone, too.
        assert_eq!(pending.push(urgent(), start), Next::Here);
    }

    #[test]
    fn small_output_goes_at_once_when_enough_of_it_waits_and_then_on_the_writer() {
        let mut pending = Pending::default();
        let start = Instant::now();
        assert_eq!(pending.push(output(URGENT_OUTPUT / 2), start), Next::Writer);
        assert_eq!(pending.push(output(URGENT_OUTPUT / 2), start), Next::Writer);
        assert_eq!(pending.due(), Some(start));
    }

    #[test]
    fn reads_and_long_queues_are_left_to_the_writer_thread() {
        let mut pending = Pending::default();
        let start = Instant::now();
        assert_eq!(pending.push(read(), start), Next::Writer);
        assert_eq!(pending.due(), Some(start));
        pending.take();
        for _ in 0..SMALL_BATCH {
            pending.push(lazy(), start);
        }
        assert_eq!(pending.push(urgent(), start), Next::Writer);
    }

    #[test]
    fn a_transaction_holds_at_most_max_batch_ops_and_the_rest_stays_due() {
        let mut pending = Pending::default();
        let start = Instant::now();
        for _ in 0..MAX_BATCH + 5 {
            pending.push(lazy(), start);
        }
        assert_eq!(pending.due(), Some(start), "a full batch goes at once");
        assert_eq!(pending.take().len(), MAX_BATCH);
        assert_eq!(
            pending.due(),
            Some(start + LINGER),
            "the rest waits from when it came"
        );
        assert_eq!(pending.take().len(), 5);
    }

    #[test]
    fn once_closed_what_waits_goes_at_once_and_then_the_writer_is_done() {
        let mut pending = Pending::default();
        let start = Instant::now();
        pending.push(lazy(), start);
        pending.close();
        assert_eq!(pending.due(), Some(start));
        assert!(!pending.finished());
        pending.take();
        assert!(pending.finished());
    }
}
