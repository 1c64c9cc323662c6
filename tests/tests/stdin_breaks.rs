//! When the path of a streamed stdin breaks, nothing is lost in silence: a hub that restarts
//! can't give the task the rest of its stdin, so the task is hung up (SIGHUP) and ends FAILED
//! saying why, and warren says so and exits with that status; an engine that dies takes its
//! task with it (`lost`), as for any task.

use rustix::process::Signal;
use warren::proto::{ListTasksRequest, TaskState, task_result};
use warren_tests::*;

const READER: &str = "while read line; do echo \"got $line\"; done; echo eof";

#[tokio::test]
async fn a_hub_restart_cuts_a_streaming_stdin_and_everyone_is_told() {
    let mut cluster = Cluster::with_engines(1).await;
    let mut command = cluster.cli_command();
    command.args(["exec", "--", "sh", "-c", READER]);
    let mut warren = Piped::spawn(command);
    warren.write(b"before\n");
    assert_eq!(warren.line().as_deref(), Some("got before"));
    // Output reaches followers before its commit, and a hub killed before committing forgets
    // the task (README, "Nothing lost"): a listing reads the history after every change
    // handed to it is committed, so the task is on disk before the kill.
    let listed = cluster
        .client()
        .await
        .tasks_page(ListTasksRequest {
            task_ids: vec![1],
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.tasks.len(), 1, "{listed:?}");

    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    cluster.start_hub(&[]);

    // The engine finds a new hub: the rest of the stdin can't come, so the task is hung up.
    let status = warren.wait();
    let stderr = warren.stderr();
    assert_eq!(status.code(), Some(128 + 1), "{status:?}: {stderr}");
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert!(stderr.contains("stdin was streaming"), "{stderr}");
    assert!(stderr.contains("Run it again"), "{stderr}");

    let client = cluster.client().await;
    let info = client.task(1).await.expect("task");
    let result = info.result.expect("ended");
    assert_eq!(result.state(), TaskState::Failed);
    assert_eq!(
        result.exit,
        Some(task_result::Exit::Signal(Signal::HUP.as_raw()))
    );
    // What it was given before is in the history.
    let (_, given, _) = cluster.cli(&["attach", "1", "--input"]);
    assert_eq!(given, "before\n");
}

#[tokio::test]
async fn an_engine_that_dies_mid_stdin_leaves_its_task_lost() {
    let flags = ["--engine-timeout-ms", "1000", "--heartbeat-ms", "200"];
    let cluster = Cluster::hub_with_engines(&flags, 1).await;
    let mut command = cluster.cli_command();
    command.args(["exec", "--", "sh", "-c", READER]);
    let mut warren = Piped::spawn(command);
    warren.write(b"before\n");
    assert_eq!(warren.line().as_deref(), Some("got before"));

    cluster.engines[0].signal(Signal::KILL);
    let status = warren.wait();
    let stderr = warren.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lost"), "{stderr}");
}
