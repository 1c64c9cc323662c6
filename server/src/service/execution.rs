//! `warren.v1.Execution`: submit tasks and follow them.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::execution_server::Execution;
use warren_proto::v1::{ExecuteRequest, StreamOutputRequest, SubmitReply};

use crate::state::Hub;
use crate::state::follow::{self, EventStream};

/// Serves `warren.v1.Execution`.
#[derive(Debug, Clone)]
pub struct ExecutionService {
    hub: Arc<Hub>,
}

impl ExecutionService {
    /// The service over this hub.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Execution for ExecutionService {
    type ExecuteStream = EventStream;
    type StreamOutputStream = EventStream;

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let submitter = super::submitter(&request);
        let ids = self.hub.submit(request.into_inner(), submitter)?;
        let events = follow::follow_all(self.hub.clone(), &ids, submitter).await?;
        Ok(Response::new(events))
    }

    async fn submit(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let submitter = super::submitter(&request);
        let task_ids = self.hub.submit(request.into_inner(), submitter)?;
        Ok(Response::new(SubmitReply { task_ids }))
    }

    async fn stream_output(
        &self,
        request: Request<StreamOutputRequest>,
    ) -> Result<Response<Self::StreamOutputStream>, Status> {
        let client = super::submitter(&request);
        let request = request.into_inner();
        let events =
            follow::follow(self.hub.clone(), request.task_id, request.from_seq, client).await?;
        Ok(Response::new(events))
    }
}
