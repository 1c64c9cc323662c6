//! `warren.v1.Registration`: the one stream each engine keeps open.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warren_proto::v1::registration_server::Registration;
use warren_proto::v1::{EngineMessage, HubMessage, engine_message};

use crate::state::Hub;

/// Handles one engine message, first taking room in the output budget for its bytes: when the
/// database falls behind, the hub stops reading engines' streams instead of growing.
async fn receive(hub: &Hub, engine_id: u32, connection: u64, message: EngineMessage) {
    let wanted = match &message.kind {
        Some(engine_message::Kind::Output(output)) => {
            (output.data.len().max(1)).min(hub.settings().limits.output_in_flight) as u32
        }
        _ => 0,
    };
    if wanted > 0
        && let Ok(permit) = hub.output_budget.clone().acquire_many_owned(wanted).await
    {
        permit.forget();
    }
    let held = hub.engine_message(engine_id, connection, message, u64::from(wanted));
    if !held && wanted > 0 {
        hub.output_budget.add_permits(wanted as usize);
    }
}

/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `warren.v1.Registration`.
#[derive(Debug, Clone)]
pub struct RegistrationService {
    hub: Arc<Hub>,
}

impl RegistrationService {
    /// The service over this hub.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    type RegisterStream = UnboundedReceiverStream<Result<HubMessage, Status>>;

    async fn register(
        &self,
        request: Request<Streaming<EngineMessage>>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "an engine must send Hello within 10 s of opening Register",
                ));
            }
            Ok(Err(status)) => return Err(status),
            Ok(Ok(None)) => {
                return Err(Status::cancelled("the engine closed Register before Hello"));
            }
            Ok(Ok(Some(message))) => message,
        };
        let Some(engine_message::Kind::Hello(hello)) = first.kind else {
            return Err(Status::invalid_argument(
                "the first message on Register must be a Hello",
            ));
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (engine_id, connection) = self.hub.register_engine(hello, tx)?;

        let hub = self.hub.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(message)) => receive(&hub, engine_id, connection, message).await,
                    Ok(None) => break "closed its stream",
                    Err(status) => {
                        tracing::debug!(engine = engine_id, %status, "engine stream failed");
                        break "lost its connection";
                    }
                }
            };
            hub.engine_gone(engine_id, connection, why);
        });
        if let Some(engine) = self.hub.lock().engines.current(engine_id, connection) {
            engine.reader = Some(reader.abort_handle());
        }
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}
