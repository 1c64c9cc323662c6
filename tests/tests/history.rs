//! The durable task history: what survives a restart, how it is found and purged, and a
//! database the hub refuses rather than wipes.

use futures_util::TryStreamExt;
use rustix::process::Signal;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;
use tonic::Code;
use warren::Job;
use warren::proto::{ListTasksRequest, TaskIds, TaskState, purge_request::Selector};
use warren_tests::*;

async fn restart(cluster: &mut Cluster) {
    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::TERM);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    cluster.start_hub(&[]);
}

#[tokio::test]
async fn finished_tasks_survive_a_restart_and_can_be_found_replayed_and_purged() {
    let mut cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    for n in 0..5 {
        let job = Job::script(format!("echo task{n}; exit {}", n % 2))
            .label("batch", if n < 3 { "a" } else { "b" });
        collect(client.run(job).await.expect("run")).await;
    }
    drop(client);
    restart(&mut cluster).await;
    cluster.wait_for_engines(2).await;
    let client = cluster.client().await;

    let all = client
        .tasks(ListTasksRequest::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("tasks");
    assert_eq!(
        all.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![5, 4, 3, 2, 1]
    );
    let failed = client
        .tasks(ListTasksRequest {
            states: vec![TaskState::Failed as i32],
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("failed tasks");
    assert_eq!(failed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![4, 2]);
    let batch_b = client
        .tasks(ListTasksRequest {
            labels: [("batch".to_string(), "b".to_string())].into(),
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("labelled tasks");
    assert_eq!(batch_b.iter().map(|t| t.id).collect::<Vec<_>>(), vec![5, 4]);
    let on_one = client
        .tasks(ListTasksRequest {
            engine_id: 1,
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("engine 1's tasks");
    assert!(!on_one.is_empty() && on_one.iter().all(|t| t.engine_id == 1));
    let future = client
        .tasks(ListTasksRequest {
            submitted_after_us: warren_proto::now_us() + 60_000_000,
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .expect("none in the future");
    assert!(future.is_empty());

    // Pages of two, in order, with no task twice.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = client
            .tasks_page(ListTasksRequest {
                limit: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page");
        paged.extend(page.tasks.iter().map(|t| t.id));
        match page.next_page_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(paged, vec![5, 4, 3, 2, 1]);
    // The same pages, read as one stream.
    let streamed: Vec<u64> = client
        .tasks(ListTasksRequest {
            limit: 2,
            ..Default::default()
        })
        .map_ok(|task| task.id)
        .try_collect()
        .await
        .expect("every page");
    assert_eq!(streamed, vec![5, 4, 3, 2, 1]);

    // Replays come from the history.
    let events = collect(client.follow(3, 0).await.expect("replay")).await;
    assert_eq!(stdout_text(&events, 3), "task2\n");
    let (status, stdout, _) = cluster.cli(&["attach", "3", "--from", "0"]);
    assert_eq!((status, stdout.as_str()), (0, "task2\n"));
    let (status, stdout, _) = cluster.cli(&["result", "2"]);
    assert_eq!(status, 1, "result exits with the task's status");
    assert!(
        stdout.contains("failed") && stdout.contains("batch=a"),
        "{stdout}"
    );

    // Purging: by id, and everything finished.
    let reply = client
        .purge(Selector::Tasks(TaskIds { ids: vec![1] }))
        .await
        .expect("purge one");
    assert_eq!(reply.purged, 1);
    assert_eq!(
        client
            .task(1)
            .await
            .expect_err("purged")
            .status()
            .map(|s| s.code()),
        Some(Code::NotFound)
    );
    let (status, stdout, stderr) = cluster.cli(&["purge", "--all"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("purged 4"), "{stdout}");
    assert!(
        client
            .tasks(ListTasksRequest::default())
            .try_collect::<Vec<_>>()
            .await
            .expect("tasks")
            .is_empty()
    );
}

#[tokio::test]
async fn a_running_task_cannot_be_purged() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let id = submit_held(&client, &gate).await;
    let err = client
        .purge(Selector::Tasks(TaskIds { ids: vec![id] }))
        .await
        .expect_err("live task");
    assert_status(&err, Code::FailedPrecondition, "abort it first");
    std::fs::write(&gate, b"").expect("gate");
}

#[tokio::test]
async fn retention_deletes_old_finished_tasks() {
    let mut cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let events = collect(client.run(Job::argv(["true"])).await.expect("run")).await;
    let finished_us = only_result(&events).finished_us;
    drop(client);
    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::TERM);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    // The next hub keeps a second of history: wait until the task is older than that.
    let old_at = finished_us + 1_000_001;
    let young_for = u64::try_from(old_at - warren_proto::now_us()).unwrap_or(0);
    tokio::time::sleep(Duration::from_micros(young_for)).await;
    cluster.start_hub(&["--retain-age", "1s"]);
    let client = cluster.client().await;
    let emptied = eventually(PATIENCE, || async {
        let tasks = client
            .tasks(ListTasksRequest::default())
            .try_collect::<Vec<_>>()
            .await
            .map_err(|_| ())?;
        if tasks.is_empty() { Ok(()) } else { Err(()) }
    })
    .await;
    assert!(
        emptied.is_ok(),
        "retention kept a task older than --retain-age"
    );
}

#[tokio::test]
async fn the_database_is_private() {
    let mut cluster = Cluster::empty();
    let db = cluster.dir().join("state/deeper/hub.db");
    let db_arg = db.to_str().expect("utf-8").to_owned();
    cluster.start_hub(&["--db", &db_arg]);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().expect("dir")), 0o700);

    let second = Cluster::empty();
    let mut command = Command::new(binary("warren-hub"));
    command
        .arg("--socket")
        .arg(&second.socket)
        .arg("--db")
        .arg(&db);
    let text = refused_start(command);
    assert!(text.contains("in use by another hub"), "{text}");
}

#[tokio::test]
async fn a_damaged_database_is_refused_and_left_untouched() {
    let cluster = Cluster::empty();
    let db = cluster.dir().join("hub.db");
    let garbage = b"this is not a database, but somebody's precious file".repeat(200);
    std::fs::write(&db, &garbage).expect("write");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = refused_start(cluster.hub_command(&[]));
    assert!(
        text.contains("damaged or not a warren database") && text.contains("move it aside"),
        "{text}"
    );
    assert_eq!(std::fs::read(&db).expect("still there"), garbage);
    assert!(
        !cluster.socket.exists(),
        "a hub that refuses never opens its socket"
    );
}

#[tokio::test]
async fn an_unusable_state_directory_is_refused() {
    let cluster = Cluster::empty();
    // A directory path that runs through a regular file: no one, not even root, can make it.
    let blocker = cluster.dir().join("a-file");
    std::fs::write(&blocker, b"").expect("write");
    let db = blocker.join("warren/hub.db");
    let text = refused_start(cluster.hub_command(&["--db", db.to_str().expect("utf-8")]));
    assert!(
        text.contains("cannot create") && text.contains("a-file"),
        "{text}"
    );

    let open = cluster.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let db = open.join("hub.db");
    let text = refused_start(cluster.hub_command(&["--db", db.to_str().expect("utf-8")]));
    assert!(text.contains("chmod 700"), "{text}");

    let readable = cluster.dir().join("readable.db");
    std::fs::write(&readable, b"").expect("write");
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = refused_start(cluster.hub_command(&["--db", readable.to_str().expect("utf-8")]));
    assert!(text.contains("chmod 600"), "{text}");
}

#[tokio::test]
async fn an_in_memory_history_works_and_ends_with_the_hub() {
    let cluster = Cluster::hub_with_engines(&["--db", ":memory:"], 1).await;
    let client = cluster.client().await;
    let events = collect(
        client
            .run(Job::argv(["echo", "fleeting"]))
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(stdout_text(&events, events[0].task_id), "fleeting\n");
    assert_eq!(
        client
            .tasks(ListTasksRequest::default())
            .try_collect::<Vec<_>>()
            .await
            .expect("tasks")
            .len(),
        1
    );
    assert!(!cluster.dir().join("hub.db").exists());
}
