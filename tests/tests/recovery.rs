//! Crashes that lose nothing: a hub killed mid-stream, an engine killed mid-task (with and
//! without retries), an engine that stops answering, a client killed mid-stream.

use futures_util::TryStreamExt;
use rustix::process::Signal;
use sha2::{Digest, Sha256};
use warren::Job;
use warren::proto::TaskState;
use warren::{EventKind, OutputStream};
use warren_tests::*;

/// A hub that writes an engine off after a second of silence.
const QUICK_LIVENESS: [&str; 4] = ["--engine-timeout-ms", "1000", "--heartbeat-ms", "200"];

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Waits until the task has written at least `bytes` bytes of output.
async fn wait_for_output(client: &warren::Client, task: u64, bytes: u64) {
    let seen = eventually(PATIENCE, || async {
        let info = client.task(task).await.map_err(|_| 0u64)?;
        if info.output_bytes >= bytes {
            Ok(())
        } else {
            Err(info.output_bytes)
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "task {task} never wrote {bytes} bytes: {seen:?}"
    );
}

#[tokio::test]
async fn a_hub_killed_mid_stream_restarts_and_every_task_ends_with_all_its_output() {
    let mut cluster = Cluster::hub();
    // A small memory bound, so that output written while the hub is down goes to spill files.
    for _ in 0..2 {
        cluster.add_engine(&["--outbox-memory", "256KiB"]);
    }
    cluster.wait_for_engines(2).await;
    let client = cluster.client().await;
    // Each task writes 6 MB of random bytes in 60 pieces over about three seconds, and keeps
    // a copy of exactly what it wrote.
    let mut tasks = Vec::new();
    for n in 0..2 {
        let copy = cluster.dir().join(format!("written-{n}"));
        let script = format!(
            "i=0; while [ $i -lt 60 ]; do head -c 100000 /dev/urandom; sleep 0.05; i=$((i+1)); done | tee {}",
            copy.display()
        );
        let id = client
            .submit(Job::script(script).engines([n + 1]))
            .await
            .expect("submit")[0];
        tasks.push((id, copy));
    }
    // Both engines are busy: this one waits in the queue.
    let queued = client
        .submit(Job::argv(["echo", "queued before the crash"]))
        .await
        .expect("submit")[0];
    wait_for_output(&client, tasks[0].0, 500_000).await;
    wait_for_output(&client, tasks[1].0, 500_000).await;

    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    drop(client);
    // The tasks go on without a hub, and end, while it is down.
    for (_, copy) in &tasks {
        let done = eventually(PATIENCE, || async {
            match std::fs::metadata(copy) {
                Ok(meta) if meta.len() == 6_000_000 => Ok(()),
                _ => Err(()),
            }
        })
        .await;
        assert!(done.is_ok(), "a task did not finish while the hub was down");
    }

    let dir = cluster.dir().to_owned();
    // Each engine keeps its spill files in a directory of its own inside the one it was given.
    let spilled = move |n: usize| {
        std::fs::read_dir(dir.join(format!("spill-{n}")))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|own| std::fs::read_dir(own.path()).ok())
            .map(|files| files.count())
            .sum::<usize>()
    };
    assert!(
        spilled(0) + spilled(1) > 0,
        "output written while the hub was down is spilled to disk"
    );
    cluster.start_hub(&[]);
    cluster.wait_for_engines(2).await;
    let client = cluster.client().await;
    for (id, copy) in &tasks {
        let events = collect(client.follow(*id, 0).await.expect("follow from 0")).await;
        assert_eq!(only_result(&events).state, TaskState::Succeeded);
        let written = std::fs::read(copy).expect("the task's copy");
        let received = output(&events, *id, OutputStream::Stdout);
        assert_eq!(received.len(), written.len(), "task {id}: output length");
        assert_eq!(
            digest(&received),
            digest(&written),
            "task {id}: output digest"
        );
        assert_contiguous(&events, *id, 0);
    }
    let events = collect(client.follow(queued, 0).await.expect("follow")).await;
    assert_eq!(stdout_text(&events, queued), "queued before the crash\n");
    let drained = eventually(PATIENCE, || async {
        if spilled(0) + spilled(1) == 0 {
            Ok(())
        } else {
            Err(())
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "spill files go once the hub has everything"
    );

    // The CLI sees the tasks from before the restart too.
    let (status, stdout, _) = cluster.cli(&["result", &tasks[0].0.to_string()]);
    assert_eq!(status, 0, "{stdout}");
    assert!(stdout.contains("succeeded"), "{stdout}");
}

#[tokio::test]
async fn an_engine_killed_mid_task_with_a_retry_succeeds_on_another() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let marker = cluster.dir().join("first-attempt-was-here");
    // The first attempt marks its visit and hangs; the second finds the mark and succeeds.
    let script = format!(
        "if [ -e {m} ]; then echo second; exit 0; fi; touch {m}; echo first; exec sleep 60",
        m = marker.display()
    );
    let mut events = client
        .run(Job::script(script).retries(1))
        .await
        .expect("run");
    let engine = first_output(&mut events).await.engine_id;
    let pid = client
        .engines()
        .await
        .expect("engines")
        .into_iter()
        .find(|e| e.id == engine)
        .expect("the engine")
        .pid;
    let victim = cluster
        .engines
        .iter()
        .find(|p| p.pid() == pid)
        .expect("its process");
    victim.signal(Signal::KILL);

    let rest = collect(events).await;
    let result = only_result(&rest);
    assert_eq!(result.state, TaskState::Succeeded, "{result:?}");
    assert_eq!(result.attempt, 2);
    let id = rest[0].task_id;
    let retried = rest.iter().any(|e| {
        matches!(&e.kind, EventKind::State { state, reason, .. } if *state == TaskState::Queued && reason.contains("retrying"))
    });
    assert!(retried, "followers are told of the retry: {rest:#?}");
    assert!(stdout_text(&rest, id).ends_with("second\n"));
    let info = client.task(id).await.expect("task");
    assert_eq!(info.attempts.len(), 2);
    assert_eq!(info.attempts[0].engine_id, engine);
    assert_ne!(
        info.attempts[1].engine_id, engine,
        "the retry avoids the engine that died"
    );
    assert!(
        info.attempts[0]
            .outcome
            .contains(&format!("engine {engine}")),
        "{:?}",
        info.attempts[0]
    );
}

#[tokio::test]
async fn a_task_that_kills_its_engines_is_not_retried_forever() {
    let mut cluster = Cluster::hub_with_engines(&QUICK_LIVENESS, 3).await;
    let client = cluster.client().await;
    // Kills whichever engine runs it.
    let job = Job::script("echo here; kill -KILL $PPID; exec sleep 60").retries(5);
    let events = collect(client.run(job).await.expect("run")).await;
    let result = only_result(&events);
    assert_eq!(result.state, TaskState::Lost);
    // Whether the last engine died before or after it reported the start is a race.
    assert!(
        result.error.contains("not retried again") || result.error.contains("not placed again"),
        "{}",
        result.error
    );
    assert!(
        result.error.contains("3 engines have died"),
        "{}",
        result.error
    );
    for engine in &mut cluster.engines {
        assert!(engine.wait_for_exit(PATIENCE).await.is_some());
    }
}

#[tokio::test]
async fn a_stopped_engine_is_declared_dead_and_comes_back_under_its_old_id() {
    let cluster = Cluster::hub_with_engines(&QUICK_LIVENESS, 1).await;
    let client = cluster.client().await;
    let before = client.engines().await.expect("engines");
    let gate = cluster.dir().join("gate");
    let script = format!("echo up; {}; echo released", wait_for_gate(&gate));
    let mut events = client.run(Job::script(script)).await.expect("run");
    first_output(&mut events).await;

    cluster.engines[0].signal(Signal::STOP);
    // Waits for the hub to write the engine off, while it is stopped; how soon it does is
    // the bench's to measure.
    let gone = eventually(PATIENCE, || async {
        let engines = client.engines().await.map_err(|_| ())?;
        if engines.is_empty() { Ok(()) } else { Err(()) }
    })
    .await;
    assert!(gone.is_ok(), "a stopped engine must be declared dead");
    let rest = collect(events).await;
    // By the 1 s liveness timeout it was started with, not by anything else.
    assert_ended(&rest, TaskState::Lost, "stopped answering for 1s");

    cluster.engines[0].signal(Signal::CONT);
    cluster.wait_for_engines(1).await;
    let after = client.engines().await.expect("engines");
    assert_eq!(
        (after[0].id, &after[0].uuid),
        (before[0].id, &before[0].uuid)
    );
    // The task the hub wrote off is not run on, and reports nothing more.
    std::fs::write(&gate, b"").expect("gate");
    let info = client.task(rest[0].task_id).await.expect("task");
    assert_eq!(info.state(), TaskState::Lost);
}

#[tokio::test]
async fn a_client_killed_mid_stream_does_not_hurt_the_task() {
    let cluster = Cluster::with_engines(1).await;
    let mut command = std::process::Command::new(binary("warren"));
    command
        .arg("--connection-file")
        .arg(&cluster.connection_file)
        .args([
            "sh",
            "i=1; while [ $i -le 300 ]; do echo line$i; sleep 0.005; i=$((i+1)); done",
        ]);
    let client_process = Proc::spawn("warren sh", command, cluster.dir().join("client.log"));
    let started = eventually(PATIENCE, || {
        let text = client_process.output();
        async move {
            if text.contains("line5\n") {
                Ok(())
            } else {
                Err(())
            }
        }
    })
    .await;
    assert!(started.is_ok(), "the client never printed output");
    client_process.signal(Signal::KILL);

    let client = cluster.client().await;
    let id = client
        .tasks(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("tasks")[0]
        .id;
    let (status, stdout, stderr) = cluster.cli(&["attach", &id.to_string(), "--from", "0"]);
    assert_eq!(status, 0, "{stderr}");
    let expected: String = (1..=300).map(|i| format!("line{i}\n")).collect();
    assert_eq!(stdout, expected);
}
