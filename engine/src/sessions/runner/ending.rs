//! The end of a session's interpreter: its running and queued cells end with the reason, and
//! the hub hears how it died (or that it was closed).

use super::*;

impl Runner {
    /// The interpreter ended: its cells end, and the hub hears why.
    pub(super) async fn died(&mut self, death: Death) {
        let (exit, how) = describe(death.status);
        let closing = self.closing.clone();
        let reason = match (&closing, death.why) {
            (Some(reason), _) => format!("closed ({reason})"),
            (None, Some(why)) => why,
            (None, None) if self.sessions.is_ready(self.id, self.generation) => {
                format!("the interpreter died ({how})")
            }
            (None, None) => {
                let tail = String::from_utf8_lossy(&self.stderr_tail);
                let tail = tail.trim();
                if tail.is_empty() {
                    format!("the interpreter exited before it was ready ({how})")
                } else {
                    format!("the interpreter exited before it was ready ({how}): {tail}")
                }
            }
        };
        if let Some(running) = self.running.take() {
            let (state, why) = match running.ending {
                Some((state, why)) if closing.is_none() => (
                    state,
                    format!(
                        "{why}; the interpreter did not stop and was killed: session {} is dead",
                        self.id
                    ),
                ),
                Some(ending) => ending,
                None => (
                    TaskState::Lost,
                    format!(
                        "session {}'s interpreter died while the cell ran ({how})",
                        self.id
                    ),
                ),
            };
            let result_exit = exit.map(|e| match e {
                session_ended::Exit::ExitCode(code) => task_result::Exit::ExitCode(code),
                session_ended::Exit::Signal(signal) => task_result::Exit::Signal(signal),
            });
            end_cell(
                &self.tasks,
                &running.cell,
                state,
                why,
                Some((running.started_us, result_exit)),
            );
        }
        for cell in std::mem::take(&mut self.queue) {
            let why = format!("session {} died before the cell ran: {reason}", self.id);
            end_cell(&self.tasks, &cell, TaskState::Failed, why, None);
        }
        if closing.is_none() {
            tracing::warn!(%reason, "session dead");
        }
        self.sessions.ended(SessionEnded {
            session_id: self.id,
            generation: self.generation,
            reason,
            exit,
            closed: closing.is_some(),
            ended_us: now_us(),
        });
    }

    /// A dead session until it is closed or replaced: cells sent to it end at once.
    pub(super) async fn dead(&mut self) {
        if self.closing.is_some() {
            return;
        }
        while let Some(command) = self.commands.recv().await {
            match command {
                SessionCommand::Cell(cell) => {
                    let why = format!(
                        "session {} is dead; restart it (`warren session restart {}`) or close it",
                        self.id, self.id
                    );
                    end_cell(&self.tasks, &cell, TaskState::Failed, why, None);
                }
                SessionCommand::Control { .. } => {}
                SessionCommand::Close { .. } => return,
            }
        }
    }
}

/// Ends a cell that did not (or could not) finish on its own.
pub(super) fn end_cell(
    tasks: &Tasks,
    cell: &Cell,
    state: TaskState,
    why: String,
    ran: Option<(i64, Option<task_result::Exit>)>,
) {
    let (started_us, exit) = ran.unwrap_or((0, None));
    tasks.finished(
        cell.task_id,
        cell.attempt,
        TaskResult {
            state: state as i32,
            exit,
            error: why,
            started_us,
            finished_us: now_us(),
            attempt: cell.attempt,
            ..Default::default()
        },
    );
}

/// An exit status as the wire and people say it.
pub(super) fn describe(status: Option<ExitStatus>) -> (Option<session_ended::Exit>, String) {
    match status.map(|s| (s.code(), s.signal())) {
        Some((Some(code), _)) => (
            Some(session_ended::Exit::ExitCode(code)),
            format!("exit status {code}"),
        ),
        Some((None, Some(signal))) => (
            Some(session_ended::Exit::Signal(signal)),
            format!("killed by {}", signals::describe(signal)),
        ),
        _ => (None, "its exit status is unknown".to_owned()),
    }
}
