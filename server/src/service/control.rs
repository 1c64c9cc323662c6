//! `warren.v1.Control`: look at the cluster and steer it.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::control_server::Control;
use warren_proto::v1::{
    AbortReply, AbortRequest, GetTaskRequest, GetVersionRequest, InterruptReply, InterruptRequest,
    ListEnginesReply, ListEnginesRequest, ListTasksReply, ListTasksRequest, PurgeReply,
    PurgeRequest, QueueStatusReply, QueueStatusRequest, ShutdownEnginesReply,
    ShutdownEnginesRequest, ShutdownReply, ShutdownRequest, TaskInfo, TaskState, VersionInfo,
    purge_request,
};
use warren_proto::{PROTOCOL_VERSION, VERSION, check_protocol_version};

use crate::state::{Hub, StopRequest};
use crate::store::{ListFilter, PurgeSelector};

/// Serves `warren.v1.Control`.
#[derive(Debug, Clone)]
pub struct ControlService {
    hub: Arc<Hub>,
}

impl ControlService {
    /// The service over this hub.
    pub fn new(hub: Arc<Hub>) -> Self {
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
            check_protocol_version("this client", theirs).map_err(Status::failed_precondition)?;
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
        Ok(Response::new(
            self.hub.get_task(request.into_inner().task_id).await?,
        ))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksReply>, Status> {
        let filter = list_filter(request.into_inner())?;
        let page = self.hub.store().list(filter).await?;
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
        Ok(Response::new(
            self.hub.abort(&request.get_ref().task_ids, by).await?,
        ))
    }

    async fn interrupt(
        &self,
        request: Request<InterruptRequest>,
    ) -> Result<Response<InterruptReply>, Status> {
        let request = request.into_inner();
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
        let engine_ids = self.hub.shutdown_engines(&request.get_ref().engine_ids)?;
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

    async fn purge(&self, request: Request<PurgeRequest>) -> Result<Response<PurgeReply>, Status> {
        let selector = match request.into_inner().selector {
            Some(purge_request::Selector::FinishedBeforeUs(t)) => PurgeSelector::FinishedBefore(t),
            Some(purge_request::Selector::Tasks(ids)) if !ids.ids.is_empty() => {
                // Ids must exist and be finished: say which are not, rather than skip them.
                for &id in &ids.ids {
                    let info = self.hub.get_task(id).await?;
                    if !info.state().is_final() {
                        return Err(Status::failed_precondition(format!(
                            "task {id} is {}; only finished tasks can be purged (abort it first)",
                            info.state().label()
                        )));
                    }
                }
                PurgeSelector::Ids(ids.ids)
            }
            Some(purge_request::Selector::AllFinished(true)) => PurgeSelector::AllFinished,
            _ => {
                return Err(Status::invalid_argument(
                    "say what to purge: finished_before_us, tasks (ids), or all_finished",
                ));
            }
        };
        let (purged, bytes) = self
            .hub
            .store()
            .query(move |conn| crate::store::purge(conn, &selector))
            .await?;
        tracing::info!(purged, bytes, "purged finished tasks");
        Ok(Response::new(PurgeReply { purged, bytes }))
    }
}

/// The database filter for a ListTasks request.
fn list_filter(request: ListTasksRequest) -> Result<ListFilter, Status> {
    crate::validate::labels("labels", &request.labels)?;
    let below_id = match request.page_token.as_str() {
        "" => None,
        token => Some(token.parse::<u64>().map_err(|_| {
            Status::invalid_argument(format!(
                "page_token {} is not one this hub gave out; pass next_page_token from the previous reply",
                warren_proto::auth::quote(token)
            ))
        })?),
    };
    for &state in &request.states {
        if TaskState::try_from(state).is_err() || state == 0 {
            return Err(Status::invalid_argument(format!(
                "{state} is not a task state"
            )));
        }
    }
    Ok(ListFilter {
        states: request.states,
        engine_id: request.engine_id,
        labels: request.labels,
        after_us: request.submitted_after_us,
        before_us: request.submitted_before_us,
        below_id,
        limit: match request.limit {
            0 => 100,
            n => n.min(1000) as usize,
        },
    })
}
