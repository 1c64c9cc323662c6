//! Calling the hub below the SDK: unsigned, or with a header the test chooses.

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warren_proto::auth::Signer;
use warren_proto::connection::ConnectionInfo;
use warren_proto::transport::connect_unix;

use crate::process::Cluster;

/// A header set on every call, or none.
pub type FixedHeader = InterceptedService<
    Channel,
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>,
>;

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

    /// A channel whose every call carries `authorization: <value>` (or nothing if `None`).
    pub async fn channel_with_header(&self, value: Option<String>) -> FixedHeader {
        let channel = self.raw_channel().await;
        let interceptor: Box<
            dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>
                + Send
                + Sync,
        > = Box::new(move |mut request: tonic::Request<()>| {
            if let Some(value) = &value {
                let value = value
                    .parse()
                    .map_err(|_| tonic::Status::internal("bad header"))?;
                request.metadata_mut().insert("authorization", value);
            }
            Ok(request)
        });
        InterceptedService::new(channel, interceptor)
    }
}
