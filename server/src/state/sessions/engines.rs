//! What engines say of their sessions, what the hub does with sessions when an engine comes
//! back (or does not), and the sessions carried over from before a restart.

use std::collections::HashSet;
use std::time::Instant;
use warren_proto::now_us;
use warren_proto::v1::{
    CloseSession, SessionEnded, SessionReport, SessionStarted, SessionState, hub_message,
    session_ended,
};

use super::Session;
use crate::model::{SessionExit, SessionRow};
use crate::state::State;
use crate::state::queues::Awaiting;
use crate::store::Op;
use crate::validate;

/// The longest banner kept.
const MAX_BANNER: usize = 256;

impl State {
    /// Puts back the sessions the history had not closed: dead ones as they are, live ones
    /// waiting (for the reattach grace) for their engine to report them.
    pub(in crate::state) fn resume_sessions(&mut self, rows: Vec<SessionRow>, now: Instant) {
        let grace = self.settings.reattach_grace;
        for row in rows {
            if row.state.is_live() {
                self.awaiting
                    .entry(row.engine_id)
                    .or_insert_with(|| Awaiting {
                        deadline: now + grace,
                        tasks: Vec::new(),
                        why: format!("did not come back within {grace:?} of the hub's restart"),
                        who: format!("engine {}", row.engine_id),
                    });
            }
            let session = Session {
                row,
                cells: Default::default(),
            };
            self.sessions.by_id.insert(session.row.id, session);
        }
        // Their cells not ended, in submission order.
        let cells: Vec<(u64, u64)> = self
            .tasks
            .values()
            .filter(|task| !task.is_ending())
            .filter_map(|task| Some((task.row.asked.session_id?, task.row.id)))
            .collect();
        for (session_id, task_id) in cells {
            if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
                session.cells.push_back(task_id);
            }
        }
    }

    /// A session's interpreter said `ready`.
    pub(in crate::state) fn session_started(&mut self, engine_id: u32, started: SessionStarted) {
        let Some(session) = self.sessions.by_id.get_mut(&started.session_id) else {
            return;
        };
        let row = &mut session.row;
        if row.engine_id != engine_id
            || row.restarts != started.generation
            || row.state != SessionState::Starting
        {
            return;
        }
        row.state = SessionState::Idle;
        row.pid = started.pid;
        row.banner = banner(started.banner);
        tracing::info!(session = row.id, pid = row.pid, banner = %row.banner, "session ready");
        let row = Box::new(row.clone());
        self.write([Op::Session(row)]);
        self.sessions.notify();
    }

    /// A session's interpreter ended.
    pub(in crate::state) fn session_ended(&mut self, engine_id: u32, ended: SessionEnded) {
        let Some(session) = self.sessions.by_id.get_mut(&ended.session_id) else {
            return;
        };
        let row = &mut session.row;
        if row.engine_id != engine_id || row.restarts != ended.generation || !row.state.is_live() {
            return;
        }
        mark_dead(row, ended);
        let row = Box::new(row.clone());
        self.write([Op::Session(row)]);
        self.sessions.notify();
    }

    /// Takes back what a registering engine reports of its sessions; those it does not
    /// report are dead, and those the hub no longer has are closed there.
    pub(in crate::state) fn reattach_sessions(
        &mut self,
        engine_id: u32,
        reports: Vec<SessionReport>,
    ) {
        let mut reported = HashSet::new();
        let mut writes = Vec::new();
        for report in reports {
            let ours = self.sessions.by_id.get_mut(&report.session_id).filter(|s| {
                s.row.engine_id == engine_id
                    && s.row.restarts == report.generation
                    && s.row.state != SessionState::Closed
            });
            let Some(session) = ours else {
                if let Some(engine) = self.engines.get(engine_id) {
                    engine.send(hub_message::Kind::CloseSession(CloseSession {
                        session_id: report.session_id,
                        reason: "the hub no longer has this session".into(),
                    }));
                }
                continue;
            };
            reported.insert(report.session_id);
            let row = &mut session.row;
            if !row.state.is_live() {
                continue;
            }
            match report.ended {
                Some(ended) => mark_dead(row, ended),
                None if report.ready => {
                    row.state = SessionState::Idle;
                    row.pid = report.pid;
                    row.banner = banner(report.banner);
                }
                None => row.state = SessionState::Starting,
            }
            writes.push(Op::Session(Box::new(row.clone())));
        }
        let who = self
            .engines
            .get(engine_id)
            .map(|e| e.describe())
            .unwrap_or_else(|| format!("engine {engine_id}"));
        for session in self.sessions.by_id.values_mut() {
            let row = &mut session.row;
            if row.engine_id == engine_id && row.state.is_live() && !reported.contains(&row.id) {
                let reason = format!(
                    "{who} came back without it (the engine restarted, or never got the session)"
                );
                writes.push(Op::Session(Box::new(die(row, reason))));
            }
        }
        self.write(writes);
        self.sessions.notify();
    }

    /// An engine is written off (it did not come back in time): its live sessions are dead.
    pub(in crate::state) fn sessions_written_off(&mut self, engine_id: u32, who: &str, why: &str) {
        let mut writes = Vec::new();
        for session in self.sessions.by_id.values_mut() {
            let row = &mut session.row;
            if row.engine_id == engine_id && row.state.is_live() {
                let reason = format!("its engine is gone: {who} {why}");
                writes.push(Op::Session(Box::new(die(row, reason))));
            }
        }
        if !writes.is_empty() {
            self.write(writes);
            self.sessions.notify();
        }
    }

    /// Live sessions per engine, for `ListEngines`.
    pub(in crate::state) fn live_sessions_on(&self, engine_id: u32) -> u32 {
        self.sessions.live_on(engine_id) as u32
    }
}

/// Marks a session dead for a reason; returns its row, to write.
fn die(row: &mut SessionRow, reason: String) -> SessionRow {
    tracing::warn!(session = row.id, %reason, "session dead");
    row.state = SessionState::Dead;
    row.reason = reason;
    row.ended_us = now_us();
    row.pid = 0;
    row.clone()
}

/// Marks a session dead as its engine reports.
fn mark_dead(row: &mut SessionRow, ended: SessionEnded) {
    let mut reason = ended.reason;
    validate::engine_error(&mut reason);
    row.exit = ended.exit.map(|exit| match exit {
        session_ended::Exit::ExitCode(code) => SessionExit::Code(code),
        session_ended::Exit::Signal(signal) => SessionExit::Signal(signal),
    });
    die(row, reason);
    if ended.ended_us > 0 {
        row.ended_us = ended.ended_us;
    }
}

/// A banner as the hub keeps it: one line, bounded.
fn banner(mut text: String) -> String {
    if let Some(line) = text.lines().next() {
        text = line.to_owned();
    }
    text.retain(|c| !c.is_control());
    if text.len() > MAX_BANNER {
        let mut end = MAX_BANNER;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
