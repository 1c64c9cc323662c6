//! `warren.v1.Control`: look at the cluster and steer it.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::control_server::Control;
use warren_proto::v1::{
    AbortReply, AbortRequest, DiagnoseReply, DiagnoseRequest, GetTaskRequest, GetVersionRequest,
    InterruptReply, InterruptRequest, ListEnginesReply, ListEnginesRequest, ListTasksReply,
    ListTasksRequest, PurgeReply, PurgeRequest, QueueStatusReply, QueueStatusRequest,
    ShutdownEnginesReply, ShutdownEnginesRequest, ShutdownReply, ShutdownRequest, TaskInfo,
    TaskState, VersionInfo, purge_request,
};
use warren_proto::{PROTOCOL_VERSION, VERSION, check_protocol_version};

use super::record_ids;
use crate::error::HubError;
use crate::state::{Hub, StopRequest};
use crate::store::{ListFilter, PurgeSelector};
use crate::validate;

/// Pages of `ListTasks` hold this many tasks unless the caller asks for another size.
const DEFAULT_PAGE: usize = 100;
/// The largest page of `ListTasks`.
const MAX_PAGE: u32 = 1000;

/// Serves `warren.v1.Control`.
#[derive(Debug, Clone)]
pub(crate) struct ControlService {
    hub: Arc<Hub>,
}

impl ControlService {
    /// The service over this hub.
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn get_version(
        &self,
        request: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        let theirs = request.into_inner().protocol_version;
        if theirs != 0 {
            check_protocol_version("this client", theirs).map_err(HubError::Precondition)?;
        }
        Ok(Response::new(VersionInfo {
            protocol_version: PROTOCOL_VERSION,
            hub_version: VERSION.into(),
            hub_id: self.hub.settings().hub_id.clone(),
            hub_time: warren_proto::now_us() / 1_000_000,
            heartbeat_ms: self.hub.settings().heartbeat.as_millis() as u32,
        }))
    }

    async fn list_engines(
        &self,
        _request: Request<ListEnginesRequest>,
    ) -> Result<Response<ListEnginesReply>, Status> {
        Ok(Response::new(ListEnginesReply {
            engines: self.hub.list_engines(),
        }))
    }

    async fn get_task(
        &self,
        request: Request<GetTaskRequest>,
    ) -> Result<Response<TaskInfo>, Status> {
        let id = request.into_inner().task_id;
        record_ids("task", &id);
        Ok(Response::new(self.hub.get_task(id).await?))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksReply>, Status> {
        let filter = list_filter(request.into_inner())?;
        let page = self.hub.list_tasks(filter).await?;
        Ok(Response::new(ListTasksReply {
            tasks: page.tasks,
            next_page_token: page.next_below.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    async fn queue_status(
        &self,
        _request: Request<QueueStatusRequest>,
    ) -> Result<Response<QueueStatusReply>, Status> {
        Ok(Response::new(self.hub.queue_status()))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<AbortReply>, Status> {
        let by = super::submitter(&request);
        let ids = &request.get_ref().task_ids;
        record_ids("tasks", ids);
        Ok(Response::new(self.hub.abort(ids, by).await?))
    }

    async fn interrupt(
        &self,
        request: Request<InterruptRequest>,
    ) -> Result<Response<InterruptReply>, Status> {
        let request = request.into_inner();
        record_ids("tasks", &request.task_ids);
        Ok(Response::new(
            self.hub
                .interrupt(&request.task_ids, request.signal)
                .await?,
        ))
    }

    async fn shutdown_engines(
        &self,
        request: Request<ShutdownEnginesRequest>,
    ) -> Result<Response<ShutdownEnginesReply>, Status> {
        let ids = &request.get_ref().engine_ids;
        record_ids("engines", ids);
        let engine_ids = self.hub.shutdown_engines(ids)?;
        Ok(Response::new(ShutdownEnginesReply { engine_ids }))
    }

    async fn shutdown(
        &self,
        request: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        let stop = if request.get_ref().engines {
            StopRequest::HubAndEngines
        } else {
            StopRequest::Hub
        };
        tracing::info!(?stop, "shutdown requested by a client");
        self.hub.request_stop(stop);
        Ok(Response::new(ShutdownReply {}))
    }

    async fn diagnose(
        &self,
        _request: Request<DiagnoseRequest>,
    ) -> Result<Response<DiagnoseReply>, Status> {
        Ok(Response::new(self.hub.diagnose().await))
    }

    async fn purge(&self, request: Request<PurgeRequest>) -> Result<Response<PurgeReply>, Status> {
        let selector = match request.into_inner().selector {
            Some(purge_request::Selector::FinishedBeforeUs(t)) => PurgeSelector::FinishedBefore(t),
            Some(purge_request::Selector::Tasks(ids)) if !ids.ids.is_empty() => {
                record_ids("tasks", &ids.ids);
                PurgeSelector::Ids(ids.ids)
            }
            Some(purge_request::Selector::AllFinished(true)) => PurgeSelector::AllFinished,
            _ => {
                return Err(HubError::invalid(
                    "say what to purge: finished_before_us, tasks (ids), or all_finished",
                )
                .into());
            }
        };
        let (purged, bytes) = self.hub.purge(selector).await?;
        Ok(Response::new(PurgeReply { purged, bytes }))
    }
}

/// The database filter for a ListTasks request.
fn list_filter(request: ListTasksRequest) -> Result<ListFilter, HubError> {
    validate::labels("labels", &request.labels)?;
    let below_id = match request.page_token.as_str() {
        "" => None,
        token => Some(token.parse::<u64>().map_err(|_| {
            HubError::invalid(format!(
                "page_token {} is not one this hub gave out; pass next_page_token from the previous reply",
                warren_proto::auth::quote(token)
            ))
        })?),
    };
    for &state in &request.states {
        if TaskState::try_from(state).is_err() || state == 0 {
            return Err(HubError::invalid(format!("{state} is not a task state")));
        }
    }
    if request.task_ids.len() > MAX_PAGE as usize {
        return Err(HubError::invalid(format!(
            "task_ids names {} tasks; at most {MAX_PAGE} can be asked for at once",
            request.task_ids.len()
        )));
    }
    Ok(ListFilter {
        task_ids: request.task_ids,
        states: request.states,
        engine_id: request.engine_id,
        labels: request.labels,
        after_us: request.submitted_after_us,
        before_us: request.submitted_before_us,
        below_id,
        limit: match request.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE) as usize,
        },
    })
}
