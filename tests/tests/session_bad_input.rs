//! Sessions asked for what can't be: each refusal has a clear status and leaves nothing
//! running. And an engine that dies takes its sessions with it.

use rustix::process::Signal;
use tonic::Code;
use warren::proto::{SessionState, TaskState};
use warren::{Job, SessionOptions};
use warren_tests::*;

/// The interpreters engine `pid` runs now: processes whose environment names it and a session.
fn interpreters(engine_pid: u32) -> Vec<u32> {
    let engine = format!("WARREN_ENGINE_PID={engine_pid}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
                vars.contains(&engine.as_bytes())
                    && vars.iter().any(|v| v.starts_with(b"WARREN_SESSION_ID="))
            })
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn bad_requests_are_refused_with_clear_statuses_and_leave_nothing_running() {
    let cluster = Cluster::hub_with_engines(&["--max-sessions-per-engine", "2"], 1).await;
    let engine_pid = cluster.engines[0].pid();
    let client = cluster.client().await;
    let cell = |code: &str, session: u64| Job::cell(code).sessions([session]);

    let err = client.run(cell("1", 999)).await.expect_err("unknown");
    assert_status(&err, Code::NotFound, "session 999 does not exist");
    let err = client
        .run(Job::cell("1").group("nobody"))
        .await
        .expect_err("no group");
    assert_status(&err, Code::NotFound, "no open session is in group nobody");
    let err = client.session(999).await.expect_err("unknown");
    assert_code(&err, Code::NotFound);

    let kept = open(&client, SessionOptions::python().name("kept")).await;
    let err = client.run(cell("a\0b", kept.id())).await.expect_err("NUL");
    assert_status(&err, Code::InvalidArgument, "NUL");
    let err = client
        .run(Job::cell("1").all())
        .await
        .expect_err("code at engines");
    assert_status(&err, Code::InvalidArgument, "aim it at sessions");
    let err = client
        .run(Job::script("true").sessions([kept.id()]))
        .await
        .expect_err("a script in a session");
    assert_status(&err, Code::InvalidArgument, "give spec.code");
    let err = client
        .run(cell("1", kept.id()).env("A", "b"))
        .await
        .expect_err("env for a cell");
    assert_code(&err, Code::InvalidArgument);
    let err = client
        .open_sessions(SessionOptions::custom(Vec::<String>::new()))
        .await
        .expect_err("custom without a program");
    assert_status(
        &err,
        Code::InvalidArgument,
        "custom session needs spec.argv",
    );
    let err = client
        .open_sessions(SessionOptions::python().name("kept"))
        .await
        .expect_err("a group name in use");
    assert_status(&err, Code::FailedPrecondition, "already has sessions");

    // Closed.
    let closed = open(&client, SessionOptions::bash()).await;
    closed.clone().close().await.expect("close");
    let err = client
        .run(cell("true", closed.id()))
        .await
        .expect_err("closed");
    assert_status(&err, Code::FailedPrecondition, "is closed");
    let err = client
        .restart_session(closed.id())
        .await
        .expect_err("closed");
    assert_status(&err, Code::FailedPrecondition, "stays closed");
    let reply = client
        .close_sessions(&[closed.id()], "")
        .await
        .expect("again");
    assert_eq!(reply.already_closed, vec![closed.id()]);

    // Dead.
    let dead = open(&client, SessionOptions::python()).await;
    let events = collect(
        client
            .run(cell("import os; os._exit(1)", dead.id()))
            .await
            .expect("run"),
    )
    .await;
    assert_ended(&events, TaskState::Lost, "died");
    wait_for_state(&client, dead.id(), SessionState::Dead).await;
    let err = client.run(cell("1", dead.id())).await.expect_err("dead");
    assert_status(&err, Code::FailedPrecondition, "is dead");

    // Too many: the dead one does not count; a third live one does.
    let second = open(&client, SessionOptions::python()).await;
    let err = client
        .open_sessions(SessionOptions::python())
        .await
        .expect_err("too many");
    assert_status(&err, Code::ResourceExhausted, "--max-sessions-per-engine 2");
    let err = client
        .restart_session(dead.id())
        .await
        .expect_err("too many");
    assert_code(&err, Code::ResourceExhausted);

    // An interpreter that can't start: the open says why, and nothing stays.
    second.close().await.expect("close");
    let err = client
        .open_session(SessionOptions::python().interpreter(["/no/such/python"]))
        .await
        .expect_err("no such interpreter");
    assert!(err.to_string().contains("no such file"), "{err}");

    let live = eventually(PATIENCE, || async {
        let now = interpreters(engine_pid);
        if now.len() == 1 { Ok(()) } else { Err(now) }
    })
    .await;
    assert!(live.is_ok(), "only the group `kept` runs: {live:?}");
    let sessions = client.list_sessions("", false).await.expect("list");
    let states: Vec<_> = sessions.iter().map(|s| (s.id, s.state())).collect();
    assert_eq!(
        states,
        vec![
            (kept.id(), SessionState::Idle),
            (dead.id(), SessionState::Dead)
        ],
        "{sessions:?}"
    );
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn an_engine_that_dies_takes_its_sessions_and_their_cells_with_it() {
    let cluster =
        Cluster::hub_with_engines(&["--engine-timeout-ms", "1000", "--heartbeat-ms", "200"], 1)
            .await;
    let engine_pid = cluster.engines[0].pid();
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    let ids = client
        .submit_cells(vec![
            Job::cell("import time\nprint('up', flush=True)\ntime.sleep(600)")
                .sessions([session.id()])
                .into_request(),
            Job::cell("1").sessions([session.id()]).into_request(),
        ])
        .await
        .expect("submit");
    let running = eventually(PATIENCE, || async {
        match client.task(ids[0]).await {
            Ok(info) if info.state() == TaskState::Running => Ok(()),
            _ => Err(()),
        }
    })
    .await;
    assert!(running.is_ok());
    cluster.engines[0].signal(Signal::KILL);
    let info = wait_for_state(&client, session.id(), SessionState::Dead).await;
    assert!(
        info.reason.contains("its engine is gone"),
        "{}",
        info.reason
    );
    for id in ids {
        let events = collect(client.follow(id, 0).await.expect("follow")).await;
        assert_ended(&events, TaskState::Lost, "interpreter is gone");
    }
    // The engine's guard cleans up after it.
    let gone = eventually(PATIENCE, || async {
        let left = interpreters(engine_pid);
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
    assert!(gone.is_ok(), "interpreters left: {gone:?}");
}
