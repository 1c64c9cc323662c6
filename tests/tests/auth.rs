//! Every HMAC refusal, that nothing of a refused call runs, and what needs no key.

use tonic::Code;
use warren::proto::control_client::ControlClient;
use warren::proto::execution_client::ExecutionClient;
use warren::proto::{ListEnginesRequest, ListTasksRequest, ShutdownRequest};
use warren_proto::auth::{HUB_TIME_HEADER, Key, Signer};
use warren_tests::*;

const LIST_ENGINES: &str = "/warren.v1.Control/ListEngines";

fn now() -> i64 {
    warren_proto::now_us() / 1_000_000
}

async fn list_engines_with(cluster: &Cluster, header: Option<String>) -> Result<(), tonic::Status> {
    let mut client = ControlClient::new(cluster.channel_with_header(header).await);
    client.list_engines(ListEnginesRequest {}).await.map(|_| ())
}

fn assert_refused(result: Result<(), tonic::Status>, reason: &str) -> tonic::Status {
    let status = result.expect_err("the call must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().starts_with(reason),
        "expected `{reason}`: {}",
        status.message()
    );
    status
}

#[tokio::test]
async fn each_refusal_names_its_reason() {
    let cluster = Cluster::hub();
    let signer = cluster.signer();

    assert_refused(list_engines_with(&cluster, None).await, "missing signature");
    assert_refused(
        list_engines_with(&cluster, Some("Warren-HMAC-SHA256 ts=1,nonce=x".into())).await,
        "malformed signature",
    );
    assert_refused(
        list_engines_with(&cluster, Some("Basic dXNlcjpwYXNz".into())).await,
        "malformed signature",
    );

    let stale = signer.sign_with(LIST_ENGINES, now() - 600, "stalestalestale00");
    let status = assert_refused(
        list_engines_with(&cluster, Some(stale)).await,
        "stale signature",
    );
    let hub_time: i64 = status
        .metadata()
        .get(HUB_TIME_HEADER)
        .expect("hub time")
        .to_str()
        .expect("text")
        .parse()
        .expect("number");
    assert!((hub_time - now()).abs() < 60);

    let future = signer.sign_with(LIST_ENGINES, now() + 600, "futurefuturefut00");
    assert_refused(
        list_engines_with(&cluster, Some(future)).await,
        "future signature",
    );

    let once = signer.sign(LIST_ENGINES);
    list_engines_with(&cluster, Some(once.clone()))
        .await
        .expect("first use passes");
    assert_refused(
        list_engines_with(&cluster, Some(once)).await,
        "replayed signature",
    );

    let wrong_key = Signer::new(&Key::generate().expect("key"), signer.hub_id()).sign(LIST_ENGINES);
    assert_refused(
        list_engines_with(&cluster, Some(wrong_key)).await,
        "bad signature",
    );

    let other_method = signer.sign("/warren.v1.Control/Shutdown");
    assert_refused(
        list_engines_with(&cluster, Some(other_method)).await,
        "bad signature",
    );

    let other_hub = Signer::new(&cluster_key(&cluster), "another-hub").sign(LIST_ENGINES);
    assert_refused(
        list_engines_with(&cluster, Some(other_hub)).await,
        "bad signature",
    );
}

fn cluster_key(cluster: &Cluster) -> Key {
    warren_proto::connection::ConnectionInfo::load(&cluster.connection_file)
        .expect("connection file")
        .key()
        .expect("key")
}

#[tokio::test]
async fn nothing_of_a_refused_call_runs() {
    let cluster = Cluster::with_engines(1).await;
    let mut unsigned = ExecutionClient::new(cluster.channel_with_header(None).await);
    let refused = unsigned
        .execute(warren::Job::script("touch /tmp/never").into_request())
        .await
        .expect_err("unsigned Execute");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let mut control = ControlClient::new(cluster.channel_with_header(None).await);
    let refused = control
        .shutdown(ShutdownRequest { engines: true })
        .await
        .expect_err("unsigned Shutdown");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let client = cluster.client().await;
    let tasks = client
        .tasks(ListTasksRequest::default())
        .await
        .expect("tasks");
    assert!(tasks.is_empty(), "a refused Execute made tasks: {tasks:?}");
    assert_eq!(client.engines().await.expect("still serving").len(), 1);
}

#[tokio::test]
async fn the_sdk_corrects_for_a_skewed_clock() {
    let cluster = Cluster::hub();
    let signer = cluster.signer();
    // This client's clock is ten minutes behind the hub's.
    signer.learn_hub_time(now() - 600);
    let client = warren::Client::connect_signed(&cluster.socket, signer)
        .await
        .expect("the SDK learns the hub's clock from the refusal and retries");
    client.engines().await.expect("later calls pass too");
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_key() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let cluster = Cluster::hub();
    let mut health = HealthClient::new(cluster.raw_channel().await);
    let reply = health
        .check(HealthCheckRequest {
            service: "warren.v1.Control".into(),
        })
        .await
        .expect("health without a key");
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);

    let mut reflection = ServerReflectionClient::new(cluster.raw_channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection without a key")
        .into_inner();
    let reply = replies.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply: {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "warren.v1.Execution",
        "warren.v1.Control",
        "warren.v1.Registration",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service} missing from {names:?}");
    }
}
