//! Where tasks run: all engines, named engines, or any one.

use std::collections::BTreeSet;
use warren::EventKind;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

#[tokio::test]
async fn all_runs_one_task_on_every_engine() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let events = collect(
        client
            .run(Job::argv(["echo", "hi"]).all())
            .await
            .expect("run"),
    )
    .await;
    let results = results(&events);
    assert_eq!(results.len(), 2);
    let engines: BTreeSet<u32> = results.values().map(|(engine, _)| *engine).collect();
    assert_eq!(engines, BTreeSet::from([1, 2]));
    for (task, (_, result)) in &results {
        assert_eq!(result.state, TaskState::Succeeded);
        assert_eq!(stdout_text(&events, *task), "hi\n");
    }
}

#[tokio::test]
async fn named_engines_get_exactly_their_tasks() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let events = collect(
        client
            .run(Job::argv(["true"]).engines([2]))
            .await
            .expect("run"),
    )
    .await;
    let results = results(&events);
    assert_eq!(
        results.values().map(|(e, _)| *e).collect::<Vec<_>>(),
        vec![2]
    );

    let unknown = client
        .run(Job::argv(["true"]).engines([42]))
        .await
        .expect_err("unknown engine");
    let status = unknown.status().expect("status");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        status.message().contains("engine 42"),
        "{}",
        status.message()
    );
    let empty = client
        .run(Job::argv(["true"]).engines(Vec::<u32>::new()))
        .await
        .expect_err("no engines named");
    assert_code(&empty, tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn any_spreads_concurrent_tasks_over_idle_engines() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let script = format!("echo up; {}", wait_for_gate(&gate));
    let a = client
        .submit(Job::script(script.clone()).any())
        .await
        .expect("submit")[0];
    let b = client
        .submit(Job::script(script).any())
        .await
        .expect("submit")[0];
    let engine_of = |id| {
        let client = client.clone();
        async move { client.task(id).await.expect("task").engine_id }
    };
    let (ea, eb) = (engine_of(a).await, engine_of(b).await);
    assert!(
        ea != 0 && eb != 0 && ea != eb,
        "tasks went to engines {ea} and {eb}"
    );
    std::fs::write(&gate, b"").expect("gate");
    for id in [a, b] {
        let events = collect(client.follow(id, 0).await.expect("follow")).await;
        assert_eq!(only_result(&events).state, TaskState::Succeeded);
    }
}

#[tokio::test]
async fn all_with_no_engines_is_refused_but_any_waits_for_one() {
    let mut cluster = Cluster::hub();
    let client = cluster.client().await;
    let all = client
        .run(Job::argv(["true"]).all())
        .await
        .expect_err("no engines");
    let status = all.status().expect("status");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("warren-engine"),
        "{}",
        status.message()
    );

    let mut events = client
        .run(Job::argv(["echo", "late"]).any())
        .await
        .expect("run");
    let first = next_event(&mut events, PATIENCE)
        .await
        .expect("queued event");
    assert!(matches!(first.kind, EventKind::State { state, .. } if state == TaskState::Queued));
    cluster.add_engine(&[]);
    let rest = collect(events).await;
    assert_eq!(stdout_text(&rest, first.task_id), "late\n");
}
