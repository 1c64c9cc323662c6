//! A session's row, as the hub holds it and the history keeps it.

use warren_proto::v1::{SessionInfo, SessionSpec, SessionState, session_info};

use super::Submitter;

/// How a session's interpreter ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionExit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

/// A session's whole row. The history keeps `Starting`, `Idle` (ready), `Dead` and `Closed`;
/// `Busy` is an idle session with cells in flight, shown live and never written.
#[derive(Clone, Debug)]
pub(crate) struct SessionRow {
    /// Its id.
    pub(crate) id: u64,
    /// The group it was opened in.
    pub(crate) group: String,
    /// How its interpreter is started.
    pub(crate) spec: SessionSpec,
    /// The engine it lives on.
    pub(crate) engine_id: u32,
    /// Starting, idle, dead or closed.
    pub(crate) state: SessionState,
    /// Who opened it.
    pub(crate) opener: Submitter,
    /// When it was opened, microseconds since the epoch.
    pub(crate) opened_us: i64,
    /// When it ended (0 while live).
    pub(crate) ended_us: i64,
    /// Why it is dead or closed (or that a restart left the old state behind).
    pub(crate) reason: String,
    /// How its interpreter ended, when dead.
    pub(crate) exit: Option<SessionExit>,
    /// The interpreter's pid (0 if none).
    pub(crate) pid: u32,
    /// The interpreter's banner.
    pub(crate) banner: String,
    /// Restarts so far: also the generation of its current interpreter.
    pub(crate) restarts: u32,
}

impl SessionRow {
    /// The session as `GetSession` and `ListSessions` show it, in `state`, with the cells in
    /// flight.
    pub(crate) fn info(&self, state: SessionState, cells: Vec<u64>) -> SessionInfo {
        SessionInfo {
            id: self.id,
            group: self.group.clone(),
            spec: Some(self.spec.clone()),
            engine_id: self.engine_id,
            state: state as i32,
            opener_uid: self.opener.uid,
            opener_pid: self.opener.pid,
            opened_us: self.opened_us,
            ended_us: self.ended_us,
            reason: self.reason.clone(),
            exit: self.exit.map(|exit| match exit {
                SessionExit::Code(code) => session_info::Exit::ExitCode(code),
                SessionExit::Signal(signal) => session_info::Exit::Signal(signal),
            }),
            pid: self.pid,
            banner: self.banner.clone(),
            restarts: self.restarts,
            cells,
        }
    }
}
