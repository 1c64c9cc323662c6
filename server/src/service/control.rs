//! `warren.v1.Control`: look at the cluster and steer it.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::control_server::Control;
use warren_proto::v1::{
    AbortReply, AbortRequest, GetTaskRequest, GetVersionRequest, InterruptReply, InterruptRequest,
    ListEnginesReply, ListEnginesRequest, ListTasksReply, ListTasksRequest, QueueStatusReply,
    QueueStatusRequest, ShutdownEnginesReply, ShutdownEnginesRequest, ShutdownReply,
    ShutdownRequest, TaskInfo, VersionInfo,
};
use warren_proto::{PROTOCOL_VERSION, VERSION, check_protocol_version};

use crate::hub::{Hub, StopRequest};

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
            self.hub.get_task(request.into_inner().task_id)?,
        ))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksReply>, Status> {
        Ok(Response::new(ListTasksReply {
            tasks: self.hub.list_tasks(request.get_ref()),
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
            self.hub.abort(&request.get_ref().task_ids, by)?,
        ))
    }

    async fn interrupt(
        &self,
        request: Request<InterruptRequest>,
    ) -> Result<Response<InterruptReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.hub.interrupt(&request.task_ids, request.signal)?,
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
}
