//! Calling the hub below the SDK: unsigned, or with a header the test chooses.

use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warren_proto::auth::Signer;
use warren_proto::connection::ConnectionInfo;
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::registration_client::RegistrationClient;
use warren_proto::v1::{EngineMessage, Hello, HubMessage, engine_message};

use crate::process::Cluster;

/// Sets (or leaves out) the `authorization` header of every call.
#[derive(Clone, Debug)]
pub struct FixedHeader(Option<String>);

impl tonic::service::Interceptor for FixedHeader {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            let value = value
                .parse()
                .map_err(|_| tonic::Status::internal("the test's header is not valid metadata"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

impl Cluster {
    /// An unsigned channel to the hub.
    pub async fn raw_channel(&self) -> Channel {
        connect_unix(&self.socket).await.expect("connect")
    }

    /// A signer with the hub's real key and id.
    pub fn signer(&self) -> Signer {
        ConnectionInfo::load(&self.connection_file)
            .expect("connection file")
            .signer()
            .expect("key")
    }

    /// Opens a signed Register stream that says `hello` (protocol version filled in) and
    /// nothing more; the caller reads what the hub sends, or leaves it unread.
    pub async fn register_raw(
        &self,
        hello: Hello,
    ) -> Result<(mpsc::Sender<EngineMessage>, tonic::Streaming<HubMessage>), tonic::Status> {
        let channel = SignedChannel::new(self.raw_channel().await, self.signer());
        let mut client = RegistrationClient::new(channel);
        let (tx, rx) = mpsc::channel(4);
        let hello = Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            ..hello
        };
        let first = EngineMessage {
            kind: Some(engine_message::Kind::Hello(hello)),
        };
        tx.send(first)
            .await
            .map_err(|_| tonic::Status::internal("the test's stream closed"))?;
        let response = client
            .register(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?;
        Ok((tx, response.into_inner()))
    }

    /// A channel whose every call carries `authorization: <value>` (or nothing if `None`).
    pub async fn channel_with_header(
        &self,
        value: Option<String>,
    ) -> InterceptedService<Channel, FixedHeader> {
        InterceptedService::new(self.raw_channel().await, FixedHeader(value))
    }
}
