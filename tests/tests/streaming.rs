//! Output streams live, stdout and stderr stay apart and in order, and bytes arrive intact.

use warren::Job;
use warren::proto::TaskState;
use warren::{EventKind, OutputStream};
use warren_tests::*;

#[tokio::test]
async fn output_arrives_while_the_task_is_still_running() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    // The task waits (bounded) for the test to open the gate after it has seen "first".
    let script = format!("echo first; {}; echo second", wait_for_gate(&gate));
    let mut events = client.run(Job::script(script)).await.expect("run");
    let task_id = loop {
        let event = next_event(&mut events, PATIENCE)
            .await
            .expect("stream ended early");
        match event.kind {
            EventKind::Output { data, .. } => {
                assert_eq!(&data[..], b"first\n");
                break event.task_id;
            }
            EventKind::Result(result) => {
                panic!("the task ended before any output arrived: {result:?}")
            }
            _ => {}
        }
    };
    let state = client.task(task_id).await.expect("task").state();
    assert_eq!(
        state,
        TaskState::Running,
        "the first chunk must arrive while the task runs"
    );
    std::fs::write(&gate, b"").expect("open the gate");
    let rest = collect(events).await;
    assert_eq!(stdout_text(&rest, task_id), "second\n");
    assert_eq!(only_result(&rest).state, TaskState::Succeeded);
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart_and_in_order() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let script = "i=1; while [ $i -le 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let events = collect(client.run(Job::script(script)).await.expect("run")).await;
    let task_id = events[0].task_id;
    let expect = |prefix: &str| -> Vec<u8> {
        (1..=300)
            .map(|i| format!("{prefix}{i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    assert_eq!(
        output(&events, task_id, OutputStream::Stdout),
        expect("out")
    );
    assert_eq!(
        output(&events, task_id, OutputStream::Stderr),
        expect("err")
    );
    assert_contiguous(&events, task_id, 0);
}

#[tokio::test]
async fn megabytes_of_binary_output_arrive_byte_for_byte() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    // 8 MiB of every byte value, from a program that writes in odd-sized pieces.
    let script = "head -c 8388608 /dev/zero | tr '\\000' '\\377' | dd bs=7777 2>/dev/null; printf '\\000\\001\\002'";
    let events = collect(client.run(Job::script(script)).await.expect("run")).await;
    let task_id = events[0].task_id;
    let out = output(&events, task_id, OutputStream::Stdout);
    assert_eq!(out.len(), 8 * 1024 * 1024 + 3);
    assert!(out[..8 * 1024 * 1024].iter().all(|&b| b == 0xff));
    assert_eq!(&out[8 * 1024 * 1024..], &[0, 1, 2]);
    assert_eq!(only_result(&events).state, TaskState::Succeeded);
}

#[tokio::test]
async fn stdin_env_and_cwd_reach_the_task() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let job = Job::script("cat; echo \"$GREETING\"; pwd")
        .stdin(&b"from stdin\n"[..])
        .env("GREETING", "hello there")
        .cwd("/tmp");
    let events = collect(client.run(job).await.expect("run")).await;
    assert_eq!(
        stdout_text(&events, events[0].task_id),
        "from stdin\nhello there\n/tmp\n"
    );
}
