//! Protocol versions: a peer speaking another one is refused, and the message names both.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warren::proto::registration_client::RegistrationClient;
use warren::proto::{EngineMessage, GetVersionRequest, Hello, engine_message};
use warren_proto::PROTOCOL_VERSION;
use warren_proto::transport::SignedChannel;
use warren_tests::*;

#[tokio::test]
async fn an_engine_speaking_another_protocol_is_refused_naming_both_versions() {
    let cluster = Cluster::hub();
    let channel = SignedChannel::new(cluster.raw_channel().await, cluster.signer());
    let mut registration = RegistrationClient::new(channel);
    let (tx, rx) = mpsc::channel(1);
    tx.send(EngineMessage {
        kind: Some(engine_message::Kind::Hello(Hello {
            protocol_version: 99,
            uuid: "from-the-future".into(),
            slots: 1,
            ..Default::default()
        })),
    })
    .await
    .expect("send hello");
    let status = registration
        .register(ReceiverStream::new(rx))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("protocol 99")
            && status
                .message()
                .contains(&format!("protocol {PROTOCOL_VERSION}")),
        "{}",
        status.message()
    );
    assert!(
        cluster
            .client()
            .await
            .engines()
            .await
            .expect("engines")
            .is_empty()
    );
}

#[tokio::test]
async fn a_client_speaking_another_protocol_is_refused() {
    let cluster = Cluster::hub();
    let client = cluster.client().await;
    let status = client
        .control()
        .get_version(GetVersionRequest {
            protocol_version: 99,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("protocol 99"),
        "{}",
        status.message()
    );
    let version = client.version().await.expect("our own version is fine");
    assert_eq!(version.protocol_version, PROTOCOL_VERSION);
}
