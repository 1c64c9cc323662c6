//! When output may be acknowledged to an engine: the one place that decides.
//!
//! An acknowledgement lets the engine forget a task's output up to a chunk (and, once
//! `finished`, the task itself), so it is only ever for what the history has committed. It is
//! held back while the task's followers lag so far behind that its window is over its size:
//! without acknowledgements the engine stops sending, which holds the task back instead of the
//! hub growing. Once the followers catch up (or leave), the held acknowledgement goes. An
//! engine that registers again is told at once what is committed, so it resends what follows.

use warren_proto::v1::{Ack, hub_message};

use super::State;

/// Why the hub looks at a task's acknowledgement now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AckCause {
    /// The history has more of the task's output, and its end if `finished`.
    Committed {
        /// Whether the task's end is committed too.
        finished: bool,
    },
    /// A follower read on, or left: an acknowledgement held back for it may go now.
    FollowersMoved,
    /// The engine registered again and must learn where to resume sending from.
    Reattached,
}

impl State {
    /// Acknowledges what is committed of a task's output to its engine, if now is the time.
    pub(super) fn acknowledge(&mut self, task_id: u64, cause: AckCause) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let finished = match cause {
            AckCause::Committed { finished } => finished && task.row.state.is_final(),
            AckCause::FollowersMoved if !task.ack_withheld => return,
            AckCause::FollowersMoved | AckCause::Reattached => false,
        };
        if cause != AckCause::Reattached {
            // A task whose end is committed has nothing more to hold back.
            if !finished && task.log.backlogged() {
                task.ack_withheld = true;
                return;
            }
            task.ack_withheld = false;
        }
        let ack = Ack {
            task_id,
            attempt: task.row.attempt,
            chunk_seq: task.chunk_committed,
            finished,
        };
        if let Some(engine) = self.engines.get(task.row.engine_id) {
            engine.send(hub_message::Kind::Ack(ack));
        }
    }
}
