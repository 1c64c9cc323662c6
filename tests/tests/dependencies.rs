//! Dependencies between tasks on a real hub: chains and diamonds run in order, a failure in
//! the middle aborts what needed it (naming it), unknown and purged dependencies are judged
//! at submission, waiting tasks survive a hub restart; and SubmitBatch is all or none.

use rustix::process::Signal;
use tonic::Code;
use warren::proto::{ListTasksRequest, TaskState, purge_request};
use warren::{Client, Job};
use warren_tests::*;

/// A task that appends `name` to the file `log`.
fn note(log: &std::path::Path, name: &str) -> Job {
    Job::script(format!("echo {name} >> '{}'", log.display()))
}

async fn submit(client: &Client, job: Job) -> u64 {
    client.submit(job).await.expect("submit")[0]
}

async fn ended(client: &Client, id: u64) -> warren::proto::TaskInfo {
    tokio::time::timeout(PATIENCE, client.wait(id))
        .await
        .expect("the task ends in time")
        .expect("wait")
}

#[tokio::test]
async fn chains_and_diamonds_run_in_dependency_order() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let log = cluster.dir().join("order");

    let a = submit(&client, note(&log, "a")).await;
    let b = submit(&client, note(&log, "b").after_ok([a])).await;
    let c = submit(&client, note(&log, "c").after_ok([b])).await;
    let top = submit(&client, note(&log, "top").after_ok([c])).await;
    let left = submit(&client, note(&log, "left").after_ok([top])).await;
    let right = submit(&client, note(&log, "right").after([top])).await;
    let bottom = submit(&client, note(&log, "bottom").after_ok([left, right])).await;

    let info = ended(&client, bottom).await;
    assert_eq!(info.state(), TaskState::Succeeded, "{info:?}");
    assert_eq!(info.after_ok, vec![left, right]);
    let order = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines[..4], ["a", "b", "c", "top"], "{order}");
    let mut middle = lines[4..6].to_vec();
    middle.sort_unstable();
    assert_eq!(middle, ["left", "right"], "{order}");
    assert_eq!(lines[6..], ["bottom"], "{order}");
    let right_info = client.task(right).await.expect("task");
    assert_eq!((right_info.after, right_info.after_ok), (vec![top], vec![]));
}

#[tokio::test]
async fn a_failure_in_the_middle_aborts_what_needed_it_naming_it() {
    let cluster = Cluster::with_engines(1).await;
    let id = |out: String| out.trim().to_owned();
    let (status, first, stderr) = cluster.cli(&["sh", "-d", "exit 3"]);
    assert_eq!(status, 0, "{stderr}");
    let first = id(first);
    let (_, second, _) = cluster.cli(&["sh", "-d", "--after-ok", &first, "echo never"]);
    let second = id(second);
    let (_, third, _) = cluster.cli(&["sh", "-d", "--after-ok", &second, "echo never"]);
    let third = id(third);
    let (_, anyway, _) = cluster.cli(&["sh", "-d", "--after", &second, "echo anyway"]);
    let anyway = id(anyway);

    let (status, _, stderr) = cluster.cli(&["wait", &first, &second, &third, &anyway]);
    assert_eq!(status, 3, "the worst status is the failed task's: {stderr}");
    assert!(
        stderr.contains(&format!(
            "task {second} aborted: task {first} ended failed, and this task was to run only after it succeeded"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "task {third} aborted: task {second} ended aborted"
        )),
        "{stderr}"
    );
    let (status, stdout, _) = cluster.cli(&["attach", &anyway]);
    assert_eq!((status, stdout.as_str()), (0, "anyway\n"));
}

#[tokio::test]
async fn unknown_and_purged_dependencies_are_judged_at_submission() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let err = client
        .submit(Job::argv(["true"]).after([4242]))
        .await
        .expect_err("no such task");
    assert_status(&err, Code::NotFound, "task 4242 does not exist");

    let good = submit(&client, Job::argv(["true"])).await;
    let bad = submit(&client, Job::argv(["false"])).await;
    ended(&client, good).await;
    ended(&client, bad).await;
    let purge = purge_request::Selector::Tasks(warren::proto::TaskIds {
        ids: vec![good, bad],
    });
    assert_eq!(client.purge(purge).await.expect("purge").purged, 2);

    let runs = submit(&client, Job::argv(["true"]).after_ok([good])).await;
    assert_eq!(ended(&client, runs).await.state(), TaskState::Succeeded);
    let doomed = submit(&client, Job::argv(["true"]).after_ok([bad])).await;
    let info = ended(&client, doomed).await;
    assert_eq!(info.state(), TaskState::Aborted);
    assert!(
        info.reason
            .contains(&format!("task {bad} (since purged) ended failed")),
        "{info:?}"
    );
}

#[tokio::test]
async fn waiting_tasks_survive_a_hub_restart() {
    let mut cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let held = submit_held(&client, &gate).await;
    let waiting = submit(
        &client,
        Job::argv(["echo", "after the restart"]).after_ok([held]),
    )
    .await;
    let info = client.task(waiting).await.expect("task");
    assert_eq!(info.state(), TaskState::Waiting);
    assert!(
        info.reason
            .contains(&format!("waiting for task {held} to succeed")),
        "{info:?}"
    );
    // A listing reads the history after every change handed to it is committed: the waiting
    // task is on disk before the hub is killed (a submission is answered before its commit).
    let listed = client
        .tasks_page(ListTasksRequest {
            task_ids: vec![waiting],
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.tasks.len(), 1, "{listed:?}");
    drop(client);

    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    cluster.start_hub(&[]);
    cluster.wait_for_engines(1).await;
    let client = cluster.client().await;
    let info = client.task(waiting).await.expect("task");
    assert_eq!(info.state(), TaskState::Waiting, "{info:?}");
    assert_eq!(info.after_ok, vec![held]);

    std::fs::write(&gate, b"").expect("open the gate");
    let info = ended(&client, waiting).await;
    assert_eq!(info.state(), TaskState::Succeeded, "{info:?}");
    let (status, stdout, _) = cluster.cli(&["attach", &waiting.to_string()]);
    assert_eq!((status, stdout.as_str()), (0, "after the restart\n"));
}

#[tokio::test]
async fn a_batch_is_submitted_whole_or_not_at_all() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let ids = client
        .submit_batch((0..3).map(|i| Job::argv(["echo", &i.to_string()])))
        .await
        .expect("batch");
    assert_eq!(ids.len(), 3);
    let last = ids[2][0];

    let mut bad = Job::argv(["true"]).into_request();
    bad.spec = None;
    let jobs = vec![Job::argv(["true"]).into_request(), bad];
    let err = client.submit_batch(jobs).await.expect_err("request 1");
    assert_status(&err, Code::InvalidArgument, "request 1 of the batch");
    let too_many = client
        .submit_batch(vec![Job::argv(["true"]); warren::MAX_BATCH + 1])
        .await
        .expect_err("too many");
    assert_status(&too_many, Code::ResourceExhausted, "at most 10000");

    // Nothing of the refused batches was submitted: the next id follows the first batch's.
    let next = submit(&client, Job::argv(["true"])).await;
    assert_eq!(next, last + 1);
}
