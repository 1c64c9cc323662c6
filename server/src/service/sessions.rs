//! `warren.v1.Sessions`: open, close, restart and look at sessions; many cells in one call.

use std::sync::Arc;
use tonic::{Request, Response, Status};
use warren_proto::v1::sessions_server::Sessions;
use warren_proto::v1::{
    CloseSessionsReply, CloseSessionsRequest, GetSessionRequest, ListSessionsReply,
    ListSessionsRequest, OpenSessionsReply, OpenSessionsRequest, RestartSessionRequest,
    SessionInfo, SubmitCellsReply, SubmitCellsRequest,
};

use super::{record_ids, submitter};
use crate::state::Hub;

/// The most requests one `SubmitCells` may carry.
const MAX_BATCH: usize = 10_000;

/// Serves `warren.v1.Sessions`.
#[derive(Debug, Clone)]
pub(crate) struct SessionsService {
    hub: Arc<Hub>,
}

impl SessionsService {
    /// The service over this hub.
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Sessions for SessionsService {
    async fn open_sessions(
        &self,
        request: Request<OpenSessionsRequest>,
    ) -> Result<Response<OpenSessionsReply>, Status> {
        let opener = submitter(&request);
        let reply = self.hub.open_sessions(request.into_inner(), opener).await?;
        Ok(Response::new(reply))
    }

    async fn close_sessions(
        &self,
        request: Request<CloseSessionsRequest>,
    ) -> Result<Response<CloseSessionsReply>, Status> {
        let by = submitter(&request);
        let request = request.into_inner();
        let reply = self
            .hub
            .close_sessions(request.ids, request.group, by)
            .await?;
        Ok(Response::new(reply))
    }

    async fn restart_session(
        &self,
        request: Request<RestartSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let by = submitter(&request);
        let id = request.into_inner().id;
        Ok(Response::new(self.hub.restart_session(id, by).await?))
    }

    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsReply>, Status> {
        let request = request.into_inner();
        let sessions = self
            .hub
            .list_sessions(request.group, request.include_closed)
            .await?;
        Ok(Response::new(ListSessionsReply { sessions }))
    }

    async fn get_session(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(self.hub.get_session(id).await?))
    }

    async fn submit_cells(
        &self,
        request: Request<SubmitCellsRequest>,
    ) -> Result<Response<SubmitCellsReply>, Status> {
        let submitter = submitter(&request);
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "{} requests in one SubmitCells; send at most {MAX_BATCH} per call",
                requests.len()
            )));
        }
        let task_ids = self.hub.submit_cells(requests, submitter)?;
        record_ids("tasks", &task_ids.len());
        Ok(Response::new(SubmitCellsReply { task_ids }))
    }
}
