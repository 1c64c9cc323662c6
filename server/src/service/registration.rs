//! `warren.v1.Registration`: the one stream each engine keeps open.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warren_proto::v1::registration_server::Registration;
use warren_proto::v1::{EngineMessage, HubMessage, engine_message};

use crate::hub::Hub;

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
        tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(message)) => hub.engine_message(engine_id, connection, message),
                    Ok(None) => break "closed its stream",
                    Err(status) => {
                        tracing::debug!(engine = engine_id, %status, "engine stream failed");
                        break "lost its connection";
                    }
                }
            };
            hub.engine_gone(engine_id, connection, why);
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}
