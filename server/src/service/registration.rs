//! `warren.v1.Registration`: the one stream each engine keeps open.

use futures_util::stream::{Map, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warren_proto::v1::registration_server::Registration;
use warren_proto::v1::{EngineMessage, HubMessage, engine_message};

use super::{Inbound, next_message, record_ids};
use crate::error::HubError;
use crate::state::{EngineTx, Hub};

/// What the hub sends an engine, as the stream's items.
type Outbound =
    Map<UnboundedReceiverStream<HubMessage>, fn(HubMessage) -> Result<HubMessage, Status>>;

/// Serves `warren.v1.Registration`.
#[derive(Debug, Clone)]
pub(crate) struct RegistrationService {
    hub: Arc<Hub>,
}

impl RegistrationService {
    /// The service over this hub.
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    type RegisterStream = Outbound;

    async fn register(
        &self,
        request: Request<Streaming<EngineMessage>>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        self.register_from(request.into_inner()).await
    }
}

impl RegistrationService {
    /// Serves an engine's stream: its Hello first, then whatever it sends.
    pub(crate) async fn register_from(
        &self,
        mut inbound: impl Inbound<EngineMessage>,
    ) -> Result<Response<Outbound>, Status> {
        let wait = self.hub.settings().hello_timeout;
        let first = match tokio::time::timeout(wait, next_message(&mut inbound)).await {
            Err(_) => return Err(HubError::NoHello(wait).into()),
            Ok(Err(status)) => return Err(status),
            Ok(Ok(None)) => return Err(HubError::ClosedBeforeHello.into()),
            Ok(Ok(Some(message))) => message,
        };
        let Some(engine_message::Kind::Hello(hello)) = first.kind else {
            return Err(HubError::invalid("the first message on Register must be a Hello").into());
        };
        let (tx, rx): (EngineTx, _) = mpsc::unbounded_channel();
        let (engine_id, connection) = self.hub.register_engine(hello, tx)?;
        record_ids("engine", &engine_id);

        // The engine's messages, read until its stream ends, the engine is written off, or
        // the hub stops.
        let hub = self.hub.clone();
        let span = tracing::info_span!("engine", engine = engine_id, connection);
        let reader = self.hub.background().spawn(span, async move {
            let why = loop {
                match next_message(&mut inbound).await {
                    Ok(Some(message)) => hub.receive(engine_id, connection, message).await,
                    Ok(None) => break "closed its stream",
                    Err(status) => {
                        tracing::debug!(%status, "engine stream failed");
                        break "lost its connection";
                    }
                }
            };
            hub.engine_gone(engine_id, connection, why);
        });
        self.hub
            .engine_reader(engine_id, connection, reader.abort_handle());
        let outbound: Outbound = UnboundedReceiverStream::new(rx).map(Ok);
        Ok(Response::new(outbound))
    }
}
