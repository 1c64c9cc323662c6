//! A hub inside another program, for measuring the hub's own costs (warren-bench): its
//! `warren.v1.Control` service, with or without the signature check in front, served on
//! whatever connections the caller hands it. Nothing else of the hub is reachable this way.

use std::sync::Arc;
use tonic::transport::Server;
use warren_proto::auth::Verifier;
use warren_proto::socket::QuietStream;
use warren_proto::v1::control_server::ControlServer;

use crate::auth;
use crate::service::ControlService;
use crate::state::{Hub, Settings};
use crate::store::{Location, Store, StoreError};

/// A hub with an in-memory history, small limits and no engines, in this process.
#[derive(Clone, Debug)]
pub struct InProcessHub {
    hub: Arc<Hub>,
}

impl InProcessHub {
    /// A hub whose calls must be signed for `hub_id`.
    pub fn new(hub_id: &str) -> Result<Self, StoreError> {
        let (store, recovered, _commits) = Store::open(Location::Memory)?;
        Ok(Self {
            hub: Hub::new(Settings::small(hub_id), store, recovered),
        })
    }

    /// Serves `warren.v1.Control` on `incoming` until it ends; every call is checked by
    /// `verifier` first, the way the hub checks it, or by nothing when `verifier` is `None`.
    pub async fn serve_control<I>(
        &self,
        incoming: I,
        verifier: Option<Arc<Verifier>>,
    ) -> Result<(), tonic::transport::Error>
    where
        I: tokio_stream::Stream<Item = std::io::Result<QuietStream>> + Send + 'static,
    {
        let control = ControlServer::new(ControlService::new(self.hub.clone()));
        match verifier {
            Some(verifier) => {
                Server::builder()
                    .layer(auth::layer(verifier))
                    .add_service(control)
                    .serve_with_incoming(incoming)
                    .await
            }
            None => {
                Server::builder()
                    .add_service(control)
                    .serve_with_incoming(incoming)
                    .await
            }
        }
    }
}
