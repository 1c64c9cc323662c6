//! What the engine tells the hub about tasks' streamed stdin: how much each task has been
//! given (the hub's window moves on as it hears), and whether it takes more. And the one case
//! where the engine cuts a stream itself: the hub it came from is gone for good (a new hub,
//! with a new id, knows nothing of it), so no byte of the rest can come.

use warren_proto::v1::{StdinAck, engine_message};

use super::{Entry, Tasks};
use crate::control::Control;

/// A task's streamed stdin, as the engine has written it.
#[derive(Debug, Default)]
pub(super) struct StdinState {
    /// Bytes written into the task.
    written: u64,
    /// It takes no more.
    closed: bool,
    /// What this session last told the hub.
    reported: Option<(u64, bool)>,
}

impl StdinState {
    /// The acknowledgement to send, if there is news since the last.
    fn news(&mut self, task_id: u64, attempt: u32) -> Option<engine_message::Kind> {
        let now = (self.written, self.closed);
        if self.reported == Some(now) {
            return None;
        }
        self.reported = Some(now);
        Some(engine_message::Kind::StdinAck(StdinAck {
            task_id,
            attempt,
            written: self.written,
            closed: self.closed,
        }))
    }

    /// Whether there is news since the last acknowledgement.
    pub(super) fn has_news(&self) -> bool {
        self.reported != Some((self.written, self.closed))
    }

    /// A new session: tell the hub again where it stands.
    pub(super) fn resend(&mut self) {
        self.reported = None;
    }
}

impl Entry {
    /// The stdin acknowledgement to send now, if any.
    pub(super) fn stdin_news(&mut self, task_id: u64) -> Option<engine_message::Kind> {
        let attempt = self.attempt;
        self.stdin.as_mut()?.news(task_id, attempt)
    }
}

impl Tasks {
    /// The task has been given `written` bytes of its streamed stdin in all (never less than
    /// before), and takes no more if `closed`.
    pub fn stdin_progress(&self, task_id: u64, attempt: u32, written: u64, closed: bool) {
        self.update(task_id, attempt, |entry| {
            let stdin = entry.stdin.get_or_insert_with(StdinState::default);
            stdin.written = stdin.written.max(written);
            stdin.closed |= closed;
        });
    }

    /// The hub that welcomed this session has id `hub_id`. If the engine served another hub
    /// before (it restarted), the streamed stdin of tasks still taking it is cut: that hub
    /// held the rest, and nobody can send it now.
    pub fn hub_is(&self, hub_id: &str) {
        let mut inner = self.lock();
        let before = inner.hub_id.replace(hub_id.to_owned());
        if before.is_none_or(|before| before == hub_id) {
            return;
        }
        for (task_id, entry) in &inner.tasks {
            let open = entry.stdin.as_ref().is_some_and(|s| !s.closed);
            if open && entry.finished.is_none() {
                tracing::warn!(
                    task = task_id,
                    "the hub restarted while this task's stdin was streaming; cutting it"
                );
                let _ = entry.control.send(Control::CutStdin(
                    "the hub restarted while its stdin was streaming from a client, and the rest \
                     of it can't come; its stdin was closed and it was sent SIGHUP. Run it again \
                     (or give the input with --stdin FILE and --detach)"
                        .to_owned(),
                ));
            }
        }
    }
}
