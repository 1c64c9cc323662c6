//! What the engine asks of a session's runner (cells to queue, controls for a cell, closing)
//! and the timers it keeps (a cell's timeout, the kill after the grace period, a SIGINT sent
//! again): the runner's side of [`SessionCommand`].

use super::ending::end_cell;
use super::*;

impl Runner {
    /// Handles a command from the engine.
    pub(super) fn command(&mut self, command: SessionCommand) {
        match command {
            SessionCommand::Cell(cell) => match &self.closing {
                Some(reason) => {
                    let why = format!("the session was closed ({reason}) before the cell ran");
                    end_cell(&self.tasks, &cell, TaskState::Aborted, why, None);
                }
                None => self.queue.push_back(cell),
            },
            SessionCommand::Control { task_id, control } => self.control(task_id, control),
            SessionCommand::Close { reason, kill } => self.close(reason, kill),
        }
    }

    /// A control for one of the session's cells (running or queued).
    pub(super) fn control(&mut self, task_id: u64, control: Control) {
        let is_running = self
            .running
            .as_ref()
            .is_some_and(|r| r.cell.task_id == task_id);
        if !is_running {
            if matches!(control, Control::Signal(_)) {
                return;
            }
            let Some(at) = self.queue.iter().position(|c| c.task_id == task_id) else {
                return;
            };
            if let Some(cell) = self.queue.remove(at) {
                let why = match control {
                    Control::Stop(why) => why,
                    _ => "aborted before it started".into(),
                };
                end_cell(&self.tasks, &cell, TaskState::Aborted, why, None);
            }
            return;
        }
        match control {
            Control::Signal(signal) => self.signal(signal),
            Control::Cancel => {
                self.interrupt_ending(TaskState::Aborted, "aborted while running".into())
            }
            Control::Stop(why) => self.interrupt_ending(TaskState::Aborted, why),
            Control::Discard => self.signal(rustix::process::Signal::INT.as_raw()),
            // A cell has no stdin or terminal of its own: those are the session's.
            Control::Stdin(_) | Control::Resize(_) | Control::CutStdin(_) => {}
        }
    }

    /// Sends a signal to the interpreter's group; a SIGINT just after a `run` is sent again
    /// a little later if the cell has not ended (the adapter may not have read the `run`).
    pub(super) fn signal(&mut self, signal: i32) {
        process::signal_group(self.pgid, signal);
        if signal == rustix::process::Signal::INT.as_raw()
            && let Some(running) = &mut self.running
            && running.sent_at.elapsed() < RESEND
            && running.resend_at.is_none()
        {
            running.resend_at = Some(running.sent_at + RESEND);
        }
    }

    /// Ends the running cell the engine's way: interrupt now, kill the session after the
    /// grace period if the interpreter does not come back.
    pub(super) fn interrupt_ending(&mut self, state: TaskState, why: String) {
        let Some(running) = &mut self.running else {
            return;
        };
        if running.ending.is_some() {
            return;
        }
        running.ending = Some((state, why));
        running.deadline = None;
        self.kill_at = Some(Instant::now() + self.grace);
        self.signal(rustix::process::Signal::INT.as_raw());
    }

    /// Begins closing: queued cells end, the running one is ended, input ends, SIGTERM (or
    /// SIGKILL at once), and SIGKILL after the grace period.
    pub(super) fn close(&mut self, reason: String, kill: bool) {
        if self.closing.is_some() {
            return;
        }
        for cell in std::mem::take(&mut self.queue) {
            let why = format!("the session was closed ({reason}) before the cell ran");
            end_cell(&self.tasks, &cell, TaskState::Aborted, why, None);
        }
        if let Some(running) = &mut self.running {
            running.ending = Some((
                TaskState::Aborted,
                format!("the session was closed ({reason}) while the cell ran"),
            ));
        }
        let signal = if kill {
            rustix::process::Signal::KILL
        } else {
            rustix::process::Signal::TERM
        };
        process::signal_group(self.pgid, signal.as_raw());
        self.kill_at = Some(Instant::now() + self.grace);
        self.closing = Some(reason);
    }

    /// The earliest timer: the running cell's timeout or SIGINT resend, or the kill.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        let running = self.running.as_ref();
        [
            running.and_then(|r| r.deadline),
            running.and_then(|r| r.resend_at),
            self.kill_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Acts on the timers that are due.
    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            tracing::warn!("the interpreter did not stop within the grace period; killing it");
            process::signal_group(self.pgid, rustix::process::Signal::KILL.as_raw());
        }
        let Some(running) = &mut self.running else {
            return;
        };
        if running.resend_at.is_some_and(|at| at <= now) {
            running.resend_at = Some(far_future());
            process::signal_group(self.pgid, rustix::process::Signal::INT.as_raw());
        }
        if running.deadline.is_some_and(|at| at <= now) {
            let limit = running.cell.timeout.unwrap_or_default();
            self.interrupt_ending(TaskState::TimedOut, format!("timed out after {limit:?}"));
        }
    }
}
