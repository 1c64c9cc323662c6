//! Every bad input is refused before anything runs, with the right status and a message a
//! person can act on; every bound answers RESOURCE_EXHAUSTED instead of growing.

use futures_util::TryStreamExt;
use std::collections::HashMap;
use tonic::Code;
use warren::proto::{
    Argv, EngineIds, ExecuteRequest, GetTaskRequest, StreamOutputRequest, Targets, TaskSpec,
    targets, task_spec,
};
use warren::{Client, Job};
use warren_tests::*;

fn argv(args: &[&str]) -> TaskSpec {
    TaskSpec {
        command: Some(task_spec::Command::Argv(Argv {
            args: args.iter().map(|s| s.to_string()).collect(),
        })),
        ..TaskSpec::default()
    }
}

fn request(spec: TaskSpec) -> ExecuteRequest {
    ExecuteRequest {
        spec: Some(spec),
        ..ExecuteRequest::default()
    }
}

async fn refused(client: &Client, request: ExecuteRequest, code: Code, needle: &str) {
    let err = client
        .submit(request)
        .await
        .expect_err("the request must be refused");
    assert_status(&err, code, needle);
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_a_reason() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let arg = Code::InvalidArgument;

    refused(&client, ExecuteRequest::default(), arg, "no spec").await;
    refused(&client, request(argv(&[])), arg, "argv is empty").await;
    refused(&client, request(argv(&["echo", "a\0b"])), arg, "NUL").await;
    let mut env = argv(&["true"]);
    env.env.insert("X".into(), "a\0b".into());
    refused(&client, request(env), arg, "NUL").await;
    let mut zero = argv(&["true"]);
    zero.timeout_ms = Some(0);
    refused(&client, request(zero), arg, "0 ms").await;
    let mut forever = argv(&["true"]);
    forever.timeout_ms = Some(u64::MAX);
    refused(&client, request(forever), arg, "30 days").await;
    let mut retries = request(argv(&["true"]));
    retries.retries = 11;
    refused(&client, retries, arg, "retries").await;

    let mut stdin = argv(&["cat"]);
    stdin.stdin = vec![b'x'; 9 << 20].into();
    refused(&client, request(stdin), Code::ResourceExhausted, "stdin").await;
    let mut huge = argv(&["true"]);
    huge.env.insert("BIG".into(), "y".repeat(17 << 20));
    refused(
        &client,
        request(huge),
        Code::ResourceExhausted,
        "over the hub's limit",
    )
    .await;

    let mut unknown_engine = request(argv(&["true"]));
    unknown_engine.targets = Some(Targets {
        selector: Some(targets::Selector::Engines(EngineIds { ids: vec![77] })),
        engine_labels: HashMap::new(),
    });
    refused(&client, unknown_engine, Code::NotFound, "engine 77").await;
    let labelled = Job::argv(["true"])
        .on_engines_labelled("gpu", "h100")
        .into_request();
    refused(&client, labelled, Code::NotFound, "gpu=h100").await;

    let tasks = client
        .tasks(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("tasks");
    assert!(tasks.is_empty(), "refused requests made tasks: {tasks:?}");
}

#[tokio::test]
async fn unknown_task_ids_are_not_found_everywhere_or_listed_as_such() {
    let cluster = Cluster::hub();
    let client = cluster.client().await;
    let not_found = |err: warren::Error| assert_status(&err, Code::NotFound, "task 404");
    not_found(client.task(404).await.expect_err("get"));
    not_found(client.follow(404, 0).await.expect_err("follow"));
    // Abort and interrupt act on the ids that exist and list the others.
    let abort = client.abort(&[404]).await.expect("abort");
    assert_eq!(abort.not_found, vec![404]);
    let interrupt = client.interrupt(&[404], 2).await.expect("interrupt");
    assert_eq!(interrupt.not_found, vec![404]);
    let status = client
        .control()
        .get_task(GetTaskRequest { task_id: 404 })
        .await
        .expect_err("raw get");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .execution()
        .stream_output(StreamOutputRequest {
            task_id: 404,
            from_seq: 0,
        })
        .await
        .expect_err("raw stream");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn queues_are_bounded_in_all_and_per_client() {
    let cluster = Cluster::hub_with(&["--max-queued", "5", "--max-queued-per-client", "3"]);
    let client = cluster.client().await;
    for _ in 0..3 {
        client
            .submit(Job::argv(["true"]))
            .await
            .expect("room for three");
    }
    let err = client
        .submit(Job::argv(["true"]))
        .await
        .expect_err("a fourth from this process");
    assert_status(&err, Code::ResourceExhausted, "--max-queued-per-client");
    // Another process has room of its own, until the hub's total is reached.
    let (status, _, stderr) = cluster.cli(&["exec", "--detach", "--", "true"]);
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = cluster.cli(&["exec", "--detach", "--", "true"]);
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = cluster.cli(&["exec", "--detach", "--", "true"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("resource exhausted") && stderr.contains("--max-queued"),
        "{stderr}"
    );
}

#[tokio::test]
async fn followers_per_task_and_engines_are_bounded() {
    let flags = ["--max-followers-per-task", "1", "--max-engines", "1"];
    let mut cluster = Cluster::hub_with_engines(&flags, 1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let id = submit_held(&client, &gate).await;
    let first = client.follow(id, 0).await.expect("one follower fits");
    let err = client.follow(id, 0).await.expect_err("a second does not");
    assert_code(&err, Code::ResourceExhausted);
    drop(first);
    std::fs::write(&gate, b"").expect("gate");

    // The second engine is told why it was refused.
    let second = cluster.add_engine(&[]);
    cluster.engines[second]
        .wait_for_output("--max-engines")
        .await;
    assert_eq!(client.engines().await.expect("engines").len(), 1);
}
