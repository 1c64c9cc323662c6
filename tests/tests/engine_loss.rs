//! An engine that dies: its running tasks are lost, its queued ones fail, and it comes back
//! under its old uuid.

use rustix::process::Signal;
use warren::EventKind;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

#[tokio::test]
async fn an_engine_killed_mid_task_loses_its_tasks_and_says_which_engine() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let mut events = client
        .run(Job::script("echo started; exec sleep 60").engines([1]))
        .await
        .expect("run");
    let queued = client
        .submit(Job::argv(["true"]).engines([1]))
        .await
        .expect("submit")[0];
    first_output(&mut events).await;
    cluster.engines[0].signal(Signal::KILL);
    let rest = collect(events).await;
    let lost = only_result(&rest);
    assert_eq!(lost.state, TaskState::Lost);
    assert!(
        lost.error.contains("engine 1") && lost.error.contains("while the task was running"),
        "{}",
        lost.error
    );

    let info = client.task(queued).await.expect("task");
    assert_eq!(info.state(), TaskState::Failed);
    assert!(
        info.reason.contains("before the task started"),
        "{}",
        info.reason
    );
    assert!(client.engines().await.expect("engines").is_empty());
}

#[tokio::test]
async fn an_engine_comes_back_with_its_uuid_when_the_hub_returns() {
    let mut cluster = Cluster::hub();
    cluster.add_engine(&["--uuid", "engine-under-test"]);
    cluster.wait_for_engines(1).await;
    let before = cluster.client().await.engines().await.expect("engines");
    assert_eq!(before[0].uuid, "engine-under-test");

    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    // The engine outlives the hub and keeps trying.
    assert!(
        cluster.engines[0].try_wait().is_none(),
        "the engine exited with its hub"
    );
    cluster.start_hub(&[]);
    cluster.wait_for_engines(1).await;
    let after = cluster.client().await.engines().await.expect("engines");
    assert_eq!(after[0].uuid, "engine-under-test");
    assert_eq!(after[0].pid, cluster.engines[0].pid());
}

#[tokio::test]
async fn what_a_killed_engines_task_left_running_is_killed_at_once() {
    let mut cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    // The background sleep is not the engine's child: the kernel won't kill it with the engine.
    let mut events = client
        .run(Job::script("sleep 300 & echo $!; wait"))
        .await
        .expect("run");
    let orphan: u32 = loop {
        let event = next_event(&mut events, PATIENCE).await.expect("stream");
        if let EventKind::Output { data, .. } = event.kind {
            break String::from_utf8_lossy(&data).trim().parse().expect("pid");
        }
    };
    cluster.engines[0].signal(Signal::KILL);
    assert!(cluster.engines[0].wait_for_exit(PATIENCE).await.is_some());
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) != Some("Z"))
    };
    // The engine's guard notices its death and kills what its tasks left behind.
    let gone = eventually(PATIENCE, || async move {
        if alive(orphan) { Err(()) } else { Ok(()) }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the orphan {orphan} outlived its killed engine"
    );
}
