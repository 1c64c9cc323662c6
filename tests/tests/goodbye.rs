//! An engine stopped by a signal says goodbye: the hub marks it gone at once and settles its
//! running task (lost, or retried elsewhere), long before the liveness timeout could, and a
//! second SIGTERM changes nothing.

use rustix::process::Signal;
use std::time::Instant;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

/// Silence would take ten minutes to notice: only a goodbye settles a task within a test.
const SLOW_LIVENESS: [&str; 4] = ["--heartbeat-ms", "60000", "--engine-timeout-ms", "600000"];

#[tokio::test]
async fn sigterm_makes_an_engine_say_goodbye_and_its_tasks_are_settled_at_once() {
    let mut cluster = Cluster::hub_with(&SLOW_LIVENESS);
    cluster.add_engine(&["--slots", "2"]);
    cluster.wait_for_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let lost = submit_held(&client, &gate).await;
    let retried = client
        .submit(Job::script(wait_for_gate(&gate)).retries(1))
        .await
        .expect("submit")[0];
    reason_in_state(&client, lost, TaskState::Running, PATIENCE).await;
    reason_in_state(&client, retried, TaskState::Running, PATIENCE).await;

    let engine = &mut cluster.engines[0];
    let stopped = Instant::now();
    engine.signal(Signal::TERM);
    engine.signal(Signal::TERM);
    let reason = reason_in_state(&client, lost, TaskState::Lost, PATIENCE).await;
    assert!(
        reason.contains("engine 1") && reason.contains("left (SIGTERM) while the task was running"),
        "{reason}"
    );
    eprintln!("SIGTERM -> task lost in {:?}", stopped.elapsed());
    engine.wait_for_success("on SIGTERM, twice").await;
    assert!(client.engines().await.expect("engines").is_empty());

    // The task that allowed a retry waits for another engine, and runs there.
    let reason = reason_in_state(&client, retried, TaskState::Queued, PATIENCE).await;
    assert!(
        reason.contains("retrying elsewhere (retry 1 of 1)"),
        "{reason}"
    );
    cluster.add_engine(&[]);
    std::fs::write(&gate, "").expect("open the gate");
    reason_in_state(&client, retried, TaskState::Succeeded, PATIENCE).await;
    let info = client.task(retried).await.expect("task");
    assert_eq!(info.attempts.len(), 2, "{info:?}");
    assert_eq!(info.engine_id, 2);
}
