//! `warren.v1.Execution`: submit tasks and follow them.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::execution_server::Execution;
use warren_proto::v1::{
    ExecuteRequest, StreamOutputRequest, SubmitBatchReply, SubmitBatchRequest, SubmitReply,
};

use super::{Events, events, record_ids, submitter};
use crate::error::HubError;
use crate::model::Submitter;
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

impl ExecutionService {
    /// Submits one request: at once when it waits for no task, else looking in the history
    /// for those that left memory.
    async fn submit_one(
        &self,
        request: ExecuteRequest,
        submitter: Submitter,
    ) -> Result<Vec<u64>, HubError> {
        if request.after.is_empty() && request.after_ok.is_empty() {
            return self.hub.submit(request, submitter);
        }
        let mut ids = self
            .hub
            .submit_batch(vec![request], submitter, false)
            .await?;
        Ok(ids.pop().unwrap_or_default())
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
        let ids = self.submit_one(request.into_inner(), submitter).await?;
        record_ids("tasks", &ids);
        let stream = self.hub.follow_all(&ids, submitter).await?;
        Ok(Response::new(events(stream)))
    }

    async fn submit(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let submitter = submitter(&request);
        let task_ids = self.submit_one(request.into_inner(), submitter).await?;
        record_ids("tasks", &task_ids);
        Ok(Response::new(SubmitReply { task_ids }))
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchReply>, Status> {
        let submitter = submitter(&request);
        let requests = request.into_inner().requests;
        let submitted = self.hub.submit_batch(requests, submitter, true).await?;
        if let (Some(first), Some(last)) = (
            submitted.iter().flatten().next(),
            submitted.iter().flatten().last(),
        ) {
            record_ids("tasks", &(first..=last));
        }
        let results = submitted
            .into_iter()
            .map(|task_ids| SubmitReply { task_ids })
            .collect();
        Ok(Response::new(SubmitBatchReply { results }))
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
