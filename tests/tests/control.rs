//! Steering running and queued work: interrupt, abort, queue status.

use warren::Job;
use warren::proto::TaskState;
use warren::{EventKind, Exit};
use warren_tests::*;

/// Submits a script and waits until its first output line shows it is running.
async fn start_and_wait(client: &warren::Client, script: &str) -> u64 {
    let id = client.submit(Job::script(script)).await.expect("submit")[0];
    let mut events = client.follow(id, 0).await.expect("follow");
    loop {
        let event = next_event(&mut events, PATIENCE)
            .await
            .expect("stream ended early");
        if matches!(event.kind, EventKind::Output { .. }) {
            return id;
        }
        assert!(
            !matches!(event.kind, EventKind::Result(_)),
            "task ended early: {event:?}"
        );
    }
}

#[tokio::test]
async fn interrupt_signals_the_whole_process_group() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let id = start_and_wait(
        &client,
        "trap 'echo got-usr1; exit 0' USR1; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    )
    .await;
    let reply = client.interrupt(&[id], 10).await.expect("interrupt");
    assert_eq!(reply.signalled, vec![id]);
    let events = collect(client.follow(id, 0).await.expect("follow")).await;
    assert_eq!(stdout_text(&events, id), "ready\ngot-usr1\n");
    assert_eq!(only_result(&events).state, TaskState::Succeeded);

    let sleeper = start_and_wait(&client, "echo ready; exec sleep 60").await;
    client
        .interrupt(&[sleeper], 0)
        .await
        .expect("interrupt with the default signal");
    let events = collect(client.follow(sleeper, 0).await.expect("follow")).await;
    assert_eq!(only_result(&events).exit, Some(Exit::Signal(2)));
}

#[tokio::test]
async fn abort_stops_queued_work_before_it_starts_and_running_work_with_sigterm() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let running = start_and_wait(&client, "echo ready; exec sleep 60").await;
    let queued = client
        .submit(Job::argv(["echo", "never"]))
        .await
        .expect("submit")[0];
    let status = client.queue_status().await.expect("queue");
    assert_eq!(status.unassigned, 1);

    let reply = client.abort(&[queued]).await.expect("abort");
    assert_eq!(reply.aborted, vec![queued]);
    let info = client.task(queued).await.expect("task");
    assert_eq!(info.state(), TaskState::Aborted);
    assert!(info.reason.contains("before it started"), "{}", info.reason);
    let events = collect(client.follow(queued, 0).await.expect("follow")).await;
    assert!(stdout_text(&events, queued).is_empty());

    let reply = client.abort(&[running]).await.expect("abort");
    assert_eq!(reply.terminating, vec![running]);
    let events = collect(client.follow(running, 0).await.expect("follow")).await;
    let result = only_result(&events);
    assert_eq!(result.state, TaskState::Aborted);
    assert_eq!(result.exit, Some(Exit::Signal(15)));

    let reply = client.abort(&[running]).await.expect("abort again");
    assert_eq!(reply.already_final, vec![running]);
    let reply = client
        .abort(&[9999, running])
        .await
        .expect("abort, one unknown");
    assert_eq!(
        (reply.not_found, reply.already_final),
        (vec![9999], vec![running])
    );
    assert_eq!(client.queue_status().await.expect("queue").unassigned, 0);
}

#[tokio::test]
async fn interrupt_rejects_unknown_signals_and_reports_unknown_tasks() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let id = client.submit(Job::argv(["true"])).await.expect("submit")[0];
    let bad = client.interrupt(&[id], 99).await.expect_err("bad signal");
    assert_code(&bad, tonic::Code::InvalidArgument);
    let reply = client
        .interrupt(&[777], 2)
        .await
        .expect("interrupt, unknown");
    assert_eq!(reply.not_found, vec![777]);
}
