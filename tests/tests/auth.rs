//! Every HMAC refusal, that nothing of a refused call runs, and what needs no key.

use futures_util::TryStreamExt;
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

    let wrong_key =
        Signer::new(&Key::generate().expect("key"), &signer.hub_id()).sign(LIST_ENGINES);
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
        .try_collect::<Vec<_>>()
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
    let client = warren::ClientBuilder::new()
        .socket(&cluster.socket)
        .signer(signer)
        .connect()
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

/// Adds every given `authorization` entry to each call.
#[derive(Clone)]
struct Entries(Vec<String>);

impl tonic::service::Interceptor for Entries {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for value in &self.0 {
            let value = value.parse().expect("metadata");
            request.metadata_mut().append("authorization", value);
        }
        Ok(request)
    }
}

#[tokio::test]
async fn only_the_exact_documented_form_passes() {
    let cluster = Cluster::hub();
    let signer = cluster.signer();
    let good = || signer.sign(LIST_ENGINES);

    // Two entries, even two good ones: which would count is not for the hub to guess.
    let channel = tonic::service::interceptor::InterceptedService::new(
        cluster.raw_channel().await,
        Entries(vec![good(), good()]),
    );
    let status = ControlClient::new(channel)
        .list_engines(ListEnginesRequest {})
        .await
        .expect_err("two authorization entries");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("2 `authorization` entries"),
        "{}",
        status.message()
    );

    // White space the grammar does not have, and padded timestamps, each with a real MAC.
    let ts = now();
    let nonce = "exactexactexact0";
    let header = signer.sign_with(LIST_ENGINES, ts, nonce);
    let variants = [
        header.replacen(" ts=", "  ts=", 1),
        header.replacen(",nonce=", ", nonce=", 1),
        header.replacen(",sig=", ",\tsig=", 1),
        format!("{header} "),
        header.replacen(&format!("ts={ts}"), &format!("ts=0{ts}"), 1),
        header.replacen(&format!("ts={ts}"), &format!("ts=+{ts}"), 1),
        format!(
            "{}{}",
            &header[..header.len() - 64],
            header[header.len() - 64..].to_uppercase()
        ),
    ];
    for variant in variants {
        assert_refused(
            list_engines_with(&cluster, Some(variant.clone())).await,
            "malformed signature",
        );
    }
    // The refusals did not use the nonce up: the exact form still passes, once.
    list_engines_with(&cluster, Some(header))
        .await
        .expect("the exact form");

    // A huge bad field is quoted in a few dozen characters, in the answer and in the log.
    let huge = format!(
        "Warren-HMAC-SHA256 ts={},nonce=x,sig=y",
        "9".repeat(10 << 10)
    );
    let status = assert_refused(
        list_engines_with(&cluster, Some(huge)).await,
        "malformed signature",
    );
    assert!(
        status.message().len() < 400,
        "{} bytes",
        status.message().len()
    );
    let log = cluster.hub.as_ref().expect("hub").output();
    assert!(
        log.lines().all(|line| line.len() < 1000),
        "a log line quotes the whole field"
    );
}

#[tokio::test]
async fn a_flood_of_forged_calls_writes_a_few_log_lines() {
    let cluster = Cluster::hub();
    let forger = Signer::new(&Key::generate().expect("key"), "forged");
    let mut client = ControlClient::new(cluster.raw_channel().await);
    for _ in 0..2000 {
        let mut request = tonic::Request::new(ListEnginesRequest {});
        let value = forger.sign(LIST_ENGINES).parse().expect("metadata");
        request.metadata_mut().insert("authorization", value);
        let status = client.list_engines(request).await.expect_err("forged");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let log = cluster.hub.as_ref().expect("hub").output();
    let warnings = log.matches("refused a call").count();
    // 2,000 calls take a few seconds here; at most 10 lines a second are written.
    assert!(
        (1..=200).contains(&warnings),
        "{warnings} refusal lines for 2,000 forged calls"
    );
}
