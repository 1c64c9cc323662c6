//! What clients ask of the hub about tasks and engines: submit, look up, list, purge, and the
//! queues' and engines' state.

use std::collections::{HashMap, VecDeque};
use warren_proto::v1::{EngineInfo, EngineQueue, ExecuteRequest, QueueStatusReply, TaskInfo};

use super::Hub;
use super::batch::Refusal;
use crate::error::HubError;
use crate::model::Submitter;
use crate::store::{ListFilter, ListPage, PurgeSelector};
use crate::validate;

impl Hub {
    /// Submits a request's tasks, one per selected engine, and starts what can start; for a
    /// request whose dependencies are in memory (or that has none). `submit_batch` also looks
    /// in the history.
    pub(crate) fn submit(
        &self,
        request: ExecuteRequest,
        submitter: Submitter,
    ) -> Result<Vec<u64>, HubError> {
        if validate::sessions::is_cell(&request) {
            return self.submit_cells(vec![request], submitter);
        }
        let request = validate::request(request)?;
        let none = HashMap::new();
        match self.update(|state| state.submit_all(&[request], &none, submitter, false)) {
            Ok(mut ids) => Ok(ids.pop().unwrap_or_default()),
            Err(Refusal::Refused(err)) => Err(err),
            Err(Refusal::Look(_)) => Err(HubError::Precondition(
                "some tasks it waits for are not in memory; submit it through submit_batch".into(),
            )),
        }
    }

    /// Every connected engine.
    pub(crate) fn list_engines(&self) -> Vec<EngineInfo> {
        self.view(|state| {
            state
                .engines
                .iter()
                .map(|e| EngineInfo {
                    sessions: state.live_sessions_on(e.id),
                    ..e.info(state.queues.get(&e.id).map_or(0, VecDeque::len))
                })
                .collect()
        })
    }

    /// One task, live or from the history.
    pub(crate) async fn get_task(&self, id: u64) -> Result<TaskInfo, HubError> {
        let unknown = match self.view(|state| {
            state
                .tasks
                .get(&id)
                .map(|task| task.info())
                .ok_or_else(|| state.unknown_task(id))
        }) {
            Ok(info) => return Ok(info),
            Err(unknown) => unknown,
        };
        self.store.task_info(id).await?.ok_or(unknown)
    }

    /// A page of tasks from the history, newest first.
    pub(crate) async fn list_tasks(&self, filter: ListFilter) -> Result<ListPage, HubError> {
        Ok(self.store.list(filter).await?)
    }

    /// Deletes finished tasks from the history: these ids, each of which must exist and be
    /// finished, or those the selector names. Returns how many, and their kept output bytes.
    pub(crate) async fn purge(&self, selector: PurgeSelector) -> Result<(u64, u64), HubError> {
        if let PurgeSelector::Ids(ids) = &selector {
            // Say which are not finished, rather than skip them.
            for &id in ids {
                let info = self.get_task(id).await?;
                if !info.state().is_final() {
                    return Err(HubError::Precondition(format!(
                        "task {id} is {}; only finished tasks can be purged (abort it first)",
                        info.state().label()
                    )));
                }
            }
        }
        self.update(|state| state.departed.forget());
        let (purged, bytes) = self.store.purge(selector).await?;
        tracing::info!(purged, bytes, "purged finished tasks");
        Ok((purged, bytes))
    }

    /// Queue lengths, overall and per engine.
    pub(crate) fn queue_status(&self) -> QueueStatusReply {
        self.view(|state| QueueStatusReply {
            tasks_in_memory: state.tasks.len() as u32,
            unassigned: state.unplaced.len() as u32,
            engines: state
                .engines
                .iter()
                .map(|e| EngineQueue {
                    engine_id: e.id,
                    queued: state.queues.get(&e.id).map_or(0, VecDeque::len) as u32,
                    running: e.task_count() as u32,
                    slots: e.slots() as u32,
                })
                .collect(),
        })
    }
}
