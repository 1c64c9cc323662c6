//! How tasks end: exit codes, signals, timeouts, programs that can't start, and leftovers.

use std::time::Duration;
use warren::Exit;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;

    let ok = only_result(&collect(client.run(Job::argv(["true"])).await.expect("run")).await);
    assert_eq!(ok.state, TaskState::Succeeded);
    assert_eq!(ok.exit, Some(Exit::Code(0)));

    let seven = only_result(&collect(client.run(Job::script("exit 7")).await.expect("run")).await);
    assert_eq!(seven.state, TaskState::Failed);
    assert_eq!(seven.exit, Some(Exit::Code(7)));
    assert!(seven.error.contains("status 7"), "{}", seven.error);

    let killed =
        only_result(&collect(client.run(Job::script("kill -KILL $$")).await.expect("run")).await);
    assert_eq!(killed.state, TaskState::Failed);
    assert_eq!(killed.exit, Some(Exit::Signal(9)));
    assert!(killed.error.contains("SIGKILL"), "{}", killed.error);
}

#[tokio::test]
async fn a_timeout_sends_sigterm() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let job = Job::argv(["sleep", "60"]).timeout(Duration::from_millis(300));
    let result = only_result(&collect(client.run(job).await.expect("run")).await);
    assert_eq!(result.state, TaskState::TimedOut);
    assert_eq!(result.exit, Some(Exit::Signal(15)));
    let ran_for = Duration::from_micros((result.finished_us - result.started_us) as u64);
    assert!(ran_for < Duration::from_secs(10), "ran for {ran_for:?}");
}

#[tokio::test]
async fn a_task_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let job = Job::script("trap '' TERM; sleep 60").timeout(Duration::from_millis(300));
    let result = only_result(&collect(client.run(job).await.expect("run")).await);
    assert_eq!(result.state, TaskState::TimedOut);
    assert_eq!(result.exit, Some(Exit::Signal(9)));
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_with_a_shells_status_and_the_reason() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let dir = cluster.dir().display().to_string();
    for (job, code, reason) in [
        (Job::argv(["/no/such/program"]), 127, "no such file"),
        (
            Job::argv(["no-such-program-anywhere"]),
            127,
            "command not found",
        ),
        (Job::argv(["/etc/passwd"]), 126, "permission denied"),
        (Job::argv([dir.as_str()]), 126, "is a directory"),
        (
            Job::argv(["true"]).cwd("/no/such/dir"),
            126,
            "working directory",
        ),
    ] {
        let result = only_result(&collect(client.run(job).await.expect("run")).await);
        assert_eq!(result.state, TaskState::Failed, "{reason}");
        assert_eq!(result.exit, Some(Exit::Code(code)), "{reason}");
        assert_eq!(result.started_us, 0, "{reason}: it never started");
        assert!(result.error.contains(reason), "{}", result.error);
        assert!(!result.error.contains("os error"), "{}", result.error);
    }
}

#[tokio::test]
async fn nothing_a_task_started_outlives_it() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let events = collect(
        client
            .run(Job::script("sleep 300 & echo $!"))
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(only_result(&events).state, TaskState::Succeeded);
    let pid: u32 = stdout_text(&events, events[0].task_id)
        .trim()
        .parse()
        .expect("pid");
    let gone = eventually(PATIENCE, || async {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => Ok(()),
            // A zombie waiting for init to reap it is dead too.
            Ok(stat) if stat.split_whitespace().nth(2) == Some("Z") => Ok(()),
            Ok(_) => Err(()),
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the background sleep (pid {pid}) outlived its task"
    );
}
