//! What clients ask of sessions: open, close, restart, list and look up.

use std::collections::HashMap;
use std::pin::pin;
use warren_proto::now_us;
use warren_proto::v1::{
    CloseSession, CloseSessionsReply, OpenSession, OpenSessionsReply, OpenSessionsRequest,
    SessionInfo, SessionSpec, SessionState, hub_message, targets,
};

use super::{START_WAIT, Session};
use crate::error::HubError;
use crate::model::{SessionRow, Submitter};
use crate::state::{Hub, State};
use crate::store::Op;
use crate::validate;

impl Hub {
    /// Opens one session per selected engine, as one group; answers once each interpreter is
    /// ready or dead (or after [`START_WAIT`], still starting).
    pub(crate) async fn open_sessions(
        &self,
        request: OpenSessionsRequest,
        opener: Submitter,
    ) -> Result<OpenSessionsReply, HubError> {
        let (spec, targets, name) = validate::sessions::open(request)?;
        let (group, ids) = self.update(|state| state.open(spec, targets, name, opener))?;
        self.wait_started(&ids).await;
        let sessions = self.view(|state| {
            ids.iter()
                .filter_map(|id| state.sessions.by_id.get(id))
                .map(|s| s.info(&state.tasks))
                .collect()
        });
        Ok(OpenSessionsReply { group, sessions })
    }

    /// Waits (for [`START_WAIT`] at most) until none of these sessions is starting.
    async fn wait_started(&self, ids: &[u64]) {
        let changed = self.view(|state| state.sessions.changed.clone());
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            // Registered before looking, so a change after the look still wakes us.
            let mut notified = pin!(changed.notified());
            notified.as_mut().enable();
            let starting = self.view(|state| {
                ids.iter().any(|id| {
                    state
                        .sessions
                        .by_id
                        .get(id)
                        .is_some_and(|s| s.row.state == SessionState::Starting)
                })
            });
            if !starting || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Closes sessions (these ids, and the sessions of `group` if given).
    pub(crate) async fn close_sessions(
        &self,
        ids: Vec<u64>,
        group: String,
        by: Submitter,
    ) -> Result<CloseSessionsReply, HubError> {
        if ids.is_empty() && group.is_empty() {
            return Err(HubError::invalid(
                "name the sessions to close: give their ids or their group",
            ));
        }
        let (mut ids, elsewhere) = self.view(|state| {
            let mut ids = ids;
            ids.extend(state.sessions.in_group(&group));
            let elsewhere: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !state.sessions.by_id.contains_key(id))
                .collect();
            (ids, elsewhere)
        });
        if !group.is_empty() && ids.is_empty() {
            return Err(HubError::NoSuchGroup(group));
        }
        let mut reply = CloseSessionsReply::default();
        for id in elsewhere {
            self.closed_in_history(id).await?;
            reply.already_closed.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        let reason = format!("closed by uid {}", by.uid);
        self.update(|state| {
            for id in ids {
                if state.close_session(id, &reason) {
                    reply.closed.push(id);
                }
            }
        });
        Ok(reply)
    }

    /// Ok if the history has the session closed; else why not (unknown).
    async fn closed_in_history(&self, id: u64) -> Result<SessionRow, HubError> {
        match self.store.session(id).await? {
            Some(row) => Ok(row),
            None => Err(HubError::UnknownSession {
                id,
                newest: self.view(|state| state.sessions.last_id),
            }),
        }
    }

    /// Starts a fresh interpreter under the same id; answers once it is ready or dead.
    pub(crate) async fn restart_session(
        &self,
        id: u64,
        by: Submitter,
    ) -> Result<SessionInfo, HubError> {
        let held = self.view(|state| state.sessions.by_id.contains_key(&id));
        if !held {
            self.closed_in_history(id).await?;
            return Err(HubError::Precondition(format!(
                "session {id} is closed, and a closed session stays closed; open a new one with `warren session open`"
            )));
        }
        self.update(|state| state.restart_session(id, by))?;
        self.wait_started(&[id]).await;
        self.get_session(id).await
    }

    /// One session: live or dead from memory, closed from the history.
    pub(crate) async fn get_session(&self, id: u64) -> Result<SessionInfo, HubError> {
        if let Some(info) =
            self.view(|state| state.sessions.by_id.get(&id).map(|s| s.info(&state.tasks)))
        {
            return Ok(info);
        }
        let row = self.closed_in_history(id).await?;
        Ok(row.info(row.state, Vec::new()))
    }

    /// Sessions not closed (of `group` only, if not empty), and closed ones too if asked, by id.
    pub(crate) async fn list_sessions(
        &self,
        group: String,
        include_closed: bool,
    ) -> Result<Vec<SessionInfo>, HubError> {
        let mut sessions: Vec<SessionInfo> = self.view(|state| {
            state
                .sessions
                .by_id
                .values()
                .filter(|s| group.is_empty() || s.row.group == group)
                .map(|s| s.info(&state.tasks))
                .collect()
        });
        if include_closed {
            let closed = self.store.closed_sessions(group).await?;
            sessions.extend(closed.iter().map(|row| row.info(row.state, Vec::new())));
            sessions.sort_by_key(|s| s.id);
        }
        Ok(sessions)
    }
}

impl State {
    /// Opens the sessions of one `OpenSessions` request; returns the group and the ids.
    fn open(
        &mut self,
        spec: SessionSpec,
        targets: (Option<targets::Selector>, HashMap<String, String>),
        name: String,
        opener: Submitter,
    ) -> Result<(String, Vec<u64>), HubError> {
        if !self.accepting {
            return Err(HubError::Stopping);
        }
        let engines = self.session_engines(targets.0, &targets.1)?;
        let group = if name.is_empty() {
            format!("group-{}", self.sessions.last_id + 1)
        } else {
            name
        };
        if !self.sessions.in_group(&group).is_empty() {
            return Err(HubError::Precondition(format!(
                "group {group} already has sessions that are not closed; close them first (`warren session close {group}`) or choose another name"
            )));
        }
        let max = self.settings.limits.max_sessions_per_engine;
        for &engine in &engines {
            let live = self.sessions.live_on(engine);
            if live >= max {
                return Err(HubError::exhausted(format!(
                    "engine {engine} already has {live} sessions (--max-sessions-per-engine {max}); close some with `warren session close`"
                )));
            }
        }
        let mut ids = Vec::with_capacity(engines.len());
        for engine_id in engines {
            self.sessions.last_id += 1;
            let id = self.sessions.last_id;
            let row = SessionRow {
                id,
                group: group.clone(),
                spec: spec.clone(),
                engine_id,
                state: SessionState::Starting,
                opener,
                opened_us: now_us(),
                ended_us: 0,
                reason: String::new(),
                exit: None,
                pid: 0,
                banner: String::new(),
                restarts: 0,
            };
            self.write([Op::Session(Box::new(row.clone()))]);
            if let Some(engine) = self.engines.get(engine_id) {
                engine.send(hub_message::Kind::OpenSession(OpenSession {
                    session_id: id,
                    spec: Some(spec.clone()),
                    generation: 0,
                }));
            }
            self.sessions.by_id.insert(
                id,
                Session {
                    row,
                    cells: Default::default(),
                },
            );
            ids.push(id);
        }
        tracing::info!(?ids, %group, uid = opener.uid, "opened sessions");
        Ok((group, ids))
    }

    /// The engines a request's targets select for sessions: every one for `all` and a list,
    /// and for `any` the one with the fewest live sessions.
    fn session_engines(
        &self,
        selector: Option<targets::Selector>,
        labels: &HashMap<String, String>,
    ) -> Result<Vec<u32>, HubError> {
        let mut engines = Vec::new();
        for placement in self.placements(selector, labels)? {
            let engine = match placement {
                Some(engine) => engine,
                None => self
                    .engines
                    .iter()
                    .filter(|e| e.has_labels(labels))
                    .min_by_key(|e| (self.sessions.live_on(e.id), e.id))
                    .map(|e| e.id)
                    .ok_or_else(|| {
                        HubError::Precondition(
                            "no engines are registered, so `any` selects none; start one with `warren-engine`"
                                .into(),
                        )
                    })?,
            };
            engines.push(engine);
        }
        Ok(engines)
    }

    /// Closes a session held in memory (it leaves memory; the history keeps it). False if it
    /// is not held.
    pub(super) fn close_session(&mut self, id: u64, reason: &str) -> bool {
        let Some(mut session) = self.sessions.by_id.remove(&id) else {
            return false;
        };
        let row = &mut session.row;
        row.state = SessionState::Closed;
        row.ended_us = now_us();
        row.reason = reason.to_owned();
        row.pid = 0;
        self.write([Op::Session(Box::new(row.clone()))]);
        if let Some(engine) = self.engines.get(row.engine_id) {
            engine.send(hub_message::Kind::CloseSession(CloseSession {
                session_id: id,
                reason: reason.to_owned(),
            }));
        }
        tracing::info!(session = id, reason, "session closed");
        self.sessions.notify();
        true
    }

    /// Gives a session a fresh interpreter under the same id.
    fn restart_session(&mut self, id: u64, by: Submitter) -> Result<(), HubError> {
        if !self.accepting {
            return Err(HubError::Stopping);
        }
        let max = self.settings.limits.max_sessions_per_engine;
        let Some(session) = self.sessions.by_id.get(&id) else {
            return Err(HubError::UnknownSession {
                id,
                newest: self.sessions.last_id,
            });
        };
        let engine_id = session.row.engine_id;
        let Some(engine) = self.engines.get(engine_id) else {
            return Err(HubError::Precondition(format!(
                "session {id}'s engine {engine_id} is not connected; wait for it to come back, or open a session on another engine"
            )));
        };
        let live = self.sessions.live_on(engine_id);
        if !session.row.state.is_live() && live >= max {
            return Err(HubError::exhausted(format!(
                "engine {engine_id} already has {live} sessions (--max-sessions-per-engine {max}); close some with `warren session close`"
            )));
        }
        let Some(session) = self.sessions.by_id.get_mut(&id) else {
            return Ok(());
        };
        let row = &mut session.row;
        row.restarts += 1;
        row.state = SessionState::Starting;
        row.reason = format!(
            "restarted by uid {}: a fresh interpreter; the old one's state is gone",
            by.uid
        );
        row.exit = None;
        row.pid = 0;
        row.banner.clear();
        row.ended_us = 0;
        engine.send(hub_message::Kind::OpenSession(OpenSession {
            session_id: id,
            spec: Some(row.spec.clone()),
            generation: row.restarts,
        }));
        let row = Box::new(row.clone());
        tracing::info!(
            session = id,
            generation = row.restarts,
            "session restarting"
        );
        self.write([Op::Session(row)]);
        self.sessions.notify();
        Ok(())
    }
}

impl super::Sessions {
    /// The ids of the sessions of a group (none for an empty name).
    pub(super) fn in_group(&self, group: &str) -> Vec<u64> {
        if group.is_empty() {
            return Vec::new();
        }
        self.by_id
            .values()
            .filter(|s| s.row.group == group)
            .map(|s| s.row.id)
            .collect()
    }
}
