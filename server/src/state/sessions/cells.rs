//! Submitting cells: one task per targeted session, sent to the session's engine at once
//! (the engine queues a session's cells and runs them in the order received).

use warren_proto::now_us;
use warren_proto::v1::{ExecuteRequest, RunCell, SessionState, hub_message, targets, task_spec};

use crate::error::HubError;
use crate::model::{Submission, Submitter};
use crate::state::task::Task;
use crate::state::{Hub, State};
use crate::validate;

/// One request's cells, checked: the sessions to run in and what to run.
struct Cells {
    sessions: Vec<u64>,
    request: ExecuteRequest,
}

impl Hub {
    /// Submits the cells of several requests in order, all or none; returns every task id
    /// made, request by request.
    pub(crate) fn submit_cells(
        &self,
        requests: Vec<ExecuteRequest>,
        submitter: Submitter,
    ) -> Result<Vec<u64>, HubError> {
        let requests = requests
            .into_iter()
            .map(validate::sessions::cell)
            .collect::<Result<Vec<_>, _>>()?;
        self.update(|state| {
            if !state.accepting {
                return Err(HubError::Stopping);
            }
            let mut batch = Vec::with_capacity(requests.len());
            for request in requests {
                let sessions = state.cell_sessions(&request)?;
                batch.push(Cells { sessions, request });
            }
            state.check_cell_room(&batch)?;
            let mut ids = Vec::new();
            for cells in batch {
                for &session_id in &cells.sessions {
                    ids.push(state.send_cell(session_id, &cells.request, submitter));
                }
            }
            Ok(ids)
        })
    }
}

impl State {
    /// The sessions a cell request targets, each able to take a cell now.
    fn cell_sessions(&self, request: &ExecuteRequest) -> Result<Vec<u64>, HubError> {
        let selector = request.targets.as_ref().and_then(|t| t.selector.as_ref());
        let ids = match selector {
            Some(targets::Selector::Sessions(list)) => list.ids.clone(),
            Some(targets::Selector::SessionGroup(group)) => {
                let ids = self.sessions.in_group(group);
                if ids.is_empty() {
                    return Err(HubError::NoSuchGroup(group.clone()));
                }
                ids
            }
            _ => return Err(HubError::invalid("a cell must be aimed at sessions")),
        };
        for &id in &ids {
            self.check_takes_cells(id)?;
        }
        Ok(ids)
    }

    /// Whether a session can take a cell now; if not, why, and what to do.
    fn check_takes_cells(&self, id: u64) -> Result<(), HubError> {
        let Some(session) = self.sessions.by_id.get(&id) else {
            return Err(if id <= self.sessions.last_id && id > 0 {
                HubError::Precondition(format!(
                    "session {id} is closed; open a new one with `warren session open`"
                ))
            } else {
                HubError::UnknownSession {
                    id,
                    newest: self.sessions.last_id,
                }
            });
        };
        let row = &session.row;
        if row.state == SessionState::Dead {
            return Err(HubError::Precondition(format!(
                "session {id} is dead ({}); restart it with `warren session restart {id}` (its state is gone), or close it",
                row.reason
            )));
        }
        if self.engines.get(row.engine_id).is_none() {
            return Err(HubError::Precondition(format!(
                "session {id}'s engine {} is not connected; wait for it to come back (its sessions keep running there)",
                row.engine_id
            )));
        }
        Ok(())
    }

    /// Refuses cells past `--max-cells-per-session` waiting in any one session.
    fn check_cell_room(&self, batch: &[Cells]) -> Result<(), HubError> {
        let max = self.settings.limits.max_cells_per_session;
        let mut more: std::collections::HashMap<u64, usize> = Default::default();
        for cells in batch {
            for &id in &cells.sessions {
                *more.entry(id).or_default() += 1;
            }
        }
        for (id, more) in more {
            let waiting = self.sessions.by_id.get(&id).map_or(0, |s| s.cells.len());
            if waiting + more > max {
                return Err(HubError::exhausted(format!(
                    "session {id} already has {waiting} cells not ended (--max-cells-per-session {max}); wait for some to end"
                )));
            }
        }
        Ok(())
    }

    /// Makes a cell's task and sends it to its session's engine; returns its id.
    fn send_cell(
        &mut self,
        session_id: u64,
        request: &ExecuteRequest,
        submitter: Submitter,
    ) -> u64 {
        let spec = request.spec.clone().unwrap_or_default();
        let code = match &spec.command {
            Some(task_spec::Command::Code(code)) => code.clone(),
            _ => String::new(),
        };
        let (engine_id, generation) = match self.sessions.by_id.get(&session_id) {
            Some(s) => (s.row.engine_id, s.row.restarts),
            None => (0, 0),
        };
        self.last_task_id += 1;
        let id = self.last_task_id;
        let asked = Submission {
            spec: spec.clone(),
            pinned: Some(engine_id),
            engine_labels: Default::default(),
            labels: request.labels.clone(),
            retries: 0,
            submitter,
            submitted_us: now_us(),
            session_id: Some(session_id),
            after: Vec::new(),
            after_ok: Vec::new(),
        };
        let (mut task, writes) = Task::create(id, asked, self.settings.log_limits, None);
        self.write(writes);
        if let Some(engine) = self.engines.get_mut(engine_id) {
            let placed = task.begin_attempt(engine_id, &engine.hello.uuid, &engine.hello.hostname);
            engine.take_cell(id);
            engine.send(hub_message::Kind::RunCell(RunCell {
                task_id: id,
                attempt: task.row.attempt,
                session_id,
                generation,
                code,
                timeout_ms: spec.timeout_ms,
            }));
            self.write(placed);
        }
        self.tasks.insert(id, task);
        if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
            session.cells.push_back(id);
        }
        id
    }

    /// Whether a task is a cell.
    pub(in crate::state) fn is_cell(&self, task_id: u64) -> bool {
        self.tasks
            .get(&task_id)
            .is_some_and(|task| task.row.asked.session_id.is_some())
    }

    /// A cell's task ended (or is ending): its session lets it go.
    pub(in crate::state) fn cell_ended(&mut self, task_id: u64) {
        let session = self
            .tasks
            .get(&task_id)
            .and_then(|task| task.row.asked.session_id);
        if let Some(session) = session {
            self.sessions.cell_ended(session, &self.tasks);
        }
    }
}
