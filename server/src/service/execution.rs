//! `warren.v1.Execution`: submit tasks and follow them.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::execution_server::Execution;
use warren_proto::v1::{ExecuteRequest, StreamOutputRequest, SubmitReply};

use super::{Events, events, record_ids, submitter};
use crate::state::Hub;

/// Serves `warren.v1.Execution`.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionService {
    hub: Arc<Hub>,
}

impl ExecutionService {
    /// The service over this hub.
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Execution for ExecutionService {
    type ExecuteStream = Events;
    type StreamOutputStream = Events;

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let submitter = submitter(&request);
        let ids = self.hub.submit(request.into_inner(), submitter)?;
        record_ids("tasks", &ids);
        let stream = self.hub.follow_all(&ids, submitter).await?;
        Ok(Response::new(events(stream)))
    }

    async fn submit(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let submitter = submitter(&request);
        let task_ids = self.hub.submit(request.into_inner(), submitter)?;
        record_ids("tasks", &task_ids);
        Ok(Response::new(SubmitReply { task_ids }))
    }

    async fn stream_output(
        &self,
        request: Request<StreamOutputRequest>,
    ) -> Result<Response<Self::StreamOutputStream>, Status> {
        let client = submitter(&request);
        let request = request.into_inner();
        record_ids("task", &request.task_id);
        let stream = self
            .hub
            .follow(request.task_id, request.from_seq, client)
            .await?;
        Ok(Response::new(events(stream)))
    }
}
