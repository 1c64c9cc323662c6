//! Sessions on real engines with the real python and bash drivers: state across cells on
//! every engine of a group, values and errors typed, bash's variables and cwd.

use warren::proto::SessionState;
use warren::{CellResult, Job, SessionOptions};
use warren_tests::*;

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn a_group_keeps_state_across_cells_on_every_engine() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let (group, sessions) = client
        .open_sessions(SessionOptions::python().all().name("analysis"))
        .await
        .expect("open");
    assert_eq!(group, "analysis");
    assert_eq!(sessions.len(), 2);
    let mut engines: Vec<u32> = sessions.iter().map(|s| s.engine_id()).collect();
    engines.sort();
    assert_eq!(engines, vec![1, 2]);
    for session in &sessions {
        assert_eq!(
            session.info().state(),
            SessionState::Idle,
            "{:?}",
            session.info()
        );
        assert!(
            session.info().banner.starts_with("Python 3"),
            "{:?}",
            session.info()
        );
    }

    // One cell per session of the group, through Execute.
    let events = collect(
        client
            .run(Job::cell("import os\nx = 6 * 7\nprint('set', os.getpid())").group("analysis"))
            .await
            .expect("run"),
    )
    .await;
    let ends = results(&events);
    assert_eq!(ends.len(), 2);
    for (task_id, (_, outcome)) in &ends {
        assert!(outcome.succeeded(), "{outcome:?}");
        assert!(stdout_text(&events, *task_id).starts_with("set "));
    }

    for session in &sessions {
        let ran = run_cell(session, "x").await;
        assert_eq!(ran.value(), "42");
        let ran = run_cell(session, "x += 1\nx").await;
        assert_eq!(ran.value(), "43");
    }

    let ran = run_cell(&sessions[0], "1/0").await;
    let (name, value, traceback) = ran.error();
    assert_eq!((name, value), ("ZeroDivisionError", "division by zero"));
    assert!(traceback.contains("Traceback"), "{traceback}");
    // A cell that raised does not end the session.
    assert_eq!(run_cell(&sessions[0], "x").await.value(), "43");

    let task = client.task(ran.task_id).await.expect("the cell's task");
    assert_eq!(task.session_id, sessions[0].id());
    assert_eq!(task.state(), warren::proto::TaskState::Failed);
    let error = task.result.and_then(|r| r.cell_error).expect("typed error");
    assert_eq!(error.name, "ZeroDivisionError");

    let listed = client.list_sessions("analysis", false).await.expect("list");
    assert_eq!(listed.len(), 2);
    let reply = client.close_sessions(&[], "analysis").await.expect("close");
    assert_eq!(reply.closed.len(), 2);
    assert!(
        client
            .list_sessions("", false)
            .await
            .expect("list")
            .is_empty()
    );
    let closed = client.list_sessions("", true).await.expect("list closed");
    assert!(
        closed.iter().all(|s| s.state() == SessionState::Closed),
        "{closed:?}"
    );
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3 and bash")]
async fn bash_keeps_variables_functions_and_cwd() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::bash()).await;
    let dir = cluster.dir().display().to_string();
    run_cell(
        &session,
        &format!("greeting=hello; say() {{ echo \"$1 $greeting\"; }}; cd '{dir}'; export MARK=7"),
    )
    .await;
    let ran = run_cell(&session, "say world; pwd; echo $MARK").await;
    assert!(ran.result.is_ok(), "{ran:?}");
    assert_eq!(ran.stdout_text(), format!("world hello\n{dir}\n7\n"));
    let ran = run_cell(&session, "false").await;
    assert_eq!(ran.error().0, "ExitStatus");
    assert_eq!(
        run_cell(&session, "echo $greeting").await.stdout_text(),
        "hello\n"
    );
    assert!(matches!(
        run_cell(&session, "true").await.result,
        CellResult::Ok { .. }
    ));
}
