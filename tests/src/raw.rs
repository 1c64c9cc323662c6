//! Calling the hub below the SDK: unsigned, or with a header the test chooses.

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warren_proto::auth::Signer;
use warren_proto::connection::ConnectionInfo;
use warren_proto::transport::connect_unix;

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

    /// A channel whose every call carries `authorization: <value>` (or nothing if `None`).
    pub async fn channel_with_header(
        &self,
        value: Option<String>,
    ) -> InterceptedService<Channel, FixedHeader> {
        InterceptedService::new(self.raw_channel().await, FixedHeader(value))
    }
}
