//! `warren.v1.Execution`: submit tasks and follow them.

use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};
use warren_proto::v1::execution_server::Execution;
use warren_proto::v1::{
    ExecuteRequest, InteractRequest, StreamOutputRequest, SubmitBatchReply, SubmitBatchRequest,
    SubmitReply,
};

use super::{Events, Inbound, events, interact, record_ids, submitter};
use crate::error::HubError;
use crate::model::Submitter;
use crate::state::{Hub, StdinChunks, StdinEnd};

/// Refuses streamed stdin where nobody streams it.
fn whole_stdin(request: &ExecuteRequest) -> Result<(), HubError> {
    if request.spec.as_ref().is_some_and(|spec| spec.stream_stdin) {
        return Err(HubError::invalid(
            "spec.stream_stdin is for Execution.Interact, which streams the stdin; Execute, Submit and SubmitBatch take it whole in spec.stdin",
        ));
    }
    Ok(())
}

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
        let waits = !request.after.is_empty() || !request.after_ok.is_empty();
        if !waits || crate::validate::sessions::is_cell(&request) {
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
    type InteractStream = Events;

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let submitter = submitter(&request);
        whole_stdin(request.get_ref())?;
        let ids = self.submit_one(request.into_inner(), submitter).await?;
        record_ids("tasks", &ids);
        let stream = self
            .hub
            .follow_all(&ids, submitter, StdinChunks::Shown)
            .await?;
        Ok(Response::new(events(stream)))
    }

    async fn submit(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let submitter = submitter(&request);
        whole_stdin(request.get_ref())?;
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
        for (index, request) in requests.iter().enumerate() {
            let refused = |source: HubError| HubError::InBatch {
                index,
                source: Box::new(source),
            };
            whole_stdin(request).map_err(refused)?;
            if crate::validate::sessions::is_cell(request) {
                return Err(refused(HubError::invalid(
                    "a batch holds tasks; send cells with Sessions.SubmitCells",
                ))
                .into());
            }
        }
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

    async fn interact(
        &self,
        request: Request<Streaming<InteractRequest>>,
    ) -> Result<Response<Self::InteractStream>, Status> {
        self.interact_from(request).await
    }
}

impl ExecutionService {
    /// Serves an Interact call: its `start`, then the stdin and resizes that follow.
    pub(crate) async fn interact_from(
        &self,
        request: Request<impl Inbound<InteractRequest>>,
    ) -> Result<Response<Events>, Status> {
        let submitter = submitter(&request);
        let mut inbound = request.into_inner();
        let start = interact::start(&mut inbound).await?;
        let (ids, room) = self.hub.submit_streaming(start, submitter)?;
        record_ids("tasks", &ids);
        let stream = match self
            .hub
            .follow_all(&ids, submitter, StdinChunks::Omitted)
            .await
        {
            Ok(stream) => stream,
            Err(err) => {
                // Nobody will stream their stdin: it ends as if the client had gone.
                self.hub.end_stdin(&ids, StdinEnd::Hangup);
                return Err(err.into());
            }
        };
        interact::carry(&self.hub, ids, room, inbound);
        Ok(Response::new(events(stream)))
    }
}
