//! Sessions when things go wrong or get big: interrupts that keep state, interpreters that
//! die (and restart), timeouts, bytes in the right cell, 100 MB from one cell, and a hub
//! SIGKILLed while a cell runs.

use futures_util::TryStreamExt;
use rustix::process::Signal;
use sha2::{Digest, Sha256};
use std::time::Duration;
use warren::proto::{SessionState, TaskState};
use warren::{CellEvent, CellResult, Exit, Job, OutputStream, SessionOptions};
use warren_tests::*;

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a running cell's events until its first output.
async fn first_output(cell: &mut warren::Cell) {
    let seen = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = cell.try_next().await.expect("events") {
            if matches!(event, CellEvent::Output { .. }) {
                return;
            }
        }
        panic!("the cell ended before any output");
    })
    .await;
    assert!(seen.is_ok(), "no output in time");
}

/// Reads a cell's events to its end.
async fn finish(cell: &mut warren::Cell) -> (CellResult, warren::Outcome) {
    tokio::time::timeout(PATIENCE, async {
        while let Some(event) = cell.try_next().await.expect("events") {
            if let CellEvent::Done { result, outcome } = event {
                return (result, *outcome);
            }
        }
        panic!("the cell's events ended without a result");
    })
    .await
    .expect("the cell did not end in time")
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn an_interrupt_stops_the_cell_and_keeps_the_state() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    run_cell(&session, "x = 1").await;
    let mut cell = session
        .execute("import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)")
        .await
        .expect("execute");
    first_output(&mut cell).await;
    assert_eq!(
        session.interrupt().await.expect("interrupt"),
        vec![cell.task_id()]
    );
    let (result, outcome) = finish(&mut cell).await;
    let CellResult::Error { name, .. } = result else {
        panic!("{result:?}")
    };
    assert_eq!(name, "KeyboardInterrupt");
    assert_eq!(outcome.state, TaskState::Failed);
    assert_eq!(run_cell(&session, "x").await.value(), "1");
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn a_crash_is_seen_at_once_and_a_restart_starts_afresh() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let mut session = open(&client, SessionOptions::python()).await;
    run_cell(&session, "x = 1").await;
    // The crash and two cells behind it, in one call: they queue on the engine.
    let ids = client
        .submit_cells(vec![
            Job::cell("import os\nos._exit(3)")
                .sessions([session.id()])
                .into_request(),
            Job::cell("x").sessions([session.id()]).into_request(),
            Job::cell("x").sessions([session.id()]).into_request(),
        ])
        .await
        .expect("submit");
    let crashed = collect(client.follow(ids[0], 0).await.expect("follow")).await;
    let outcome = only_result(&crashed);
    assert_eq!(outcome.state, TaskState::Lost, "{outcome:?}");
    assert_eq!(outcome.exit, Some(Exit::Code(3)));
    assert!(outcome.error.contains("died"), "{}", outcome.error);
    for queued in &ids[1..] {
        let events = collect(client.follow(*queued, 0).await.expect("follow")).await;
        assert_ended(&events, TaskState::Failed, "died before the cell ran");
    }
    let info = wait_for_state(&client, session.id(), SessionState::Dead).await;
    assert_eq!(
        info.exit,
        Some(warren::proto::session_info::Exit::ExitCode(3))
    );
    assert!(info.reason.contains("exit status 3"), "{}", info.reason);

    let info = session.restart().await.expect("restart").clone();
    assert_eq!(info.state(), SessionState::Idle, "{info:?}");
    assert_eq!(info.restarts, 1);
    assert!(info.reason.contains("state is gone"), "{}", info.reason);
    let ran = run_cell(&session, "x").await;
    assert_eq!(ran.error().0, "NameError");

    // Killed by hand: SIGKILL to the interpreter, while a cell runs.
    let mut cell = session
        .execute("import time\nprint('up', flush=True)\ntime.sleep(600)")
        .await
        .expect("execute");
    first_output(&mut cell).await;
    let pid = client.session(session.id()).await.expect("get").pid;
    assert!(pid > 0);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        Signal::KILL,
    )
    .expect("kill");
    let (result, outcome) = finish(&mut cell).await;
    assert!(matches!(result, CellResult::Failed(_)), "{result:?}");
    assert_eq!(outcome.state, TaskState::Lost);
    assert_eq!(outcome.exit, Some(Exit::Signal(9)));
    let info = wait_for_state(&client, session.id(), SessionState::Dead).await;
    assert_eq!(
        info.exit,
        Some(warren::proto::session_info::Exit::Signal(9))
    );
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn a_timeout_interrupts_and_an_interpreter_that_ignores_it_is_killed() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    run_cell(&session, "x = 5").await;
    let job = |code: &str| {
        Job::cell(code)
            .sessions([session.id()])
            .timeout(Duration::from_millis(300))
    };
    let events = collect(
        client
            .run(job("import time\ntime.sleep(60)"))
            .await
            .expect("run"),
    )
    .await;
    let outcome = assert_ended(&events, TaskState::TimedOut, "timed out");
    assert_eq!(
        outcome.cell_error.map(|e| e.name).as_deref(),
        Some("KeyboardInterrupt")
    );
    assert_eq!(
        run_cell(&session, "x").await.value(),
        "5",
        "the state survives"
    );

    // SIGINT ignored: the engine kills the session after its grace period (500 ms here).
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)";
    let events = collect(client.run(job(code)).await.expect("run")).await;
    assert_ended(&events, TaskState::TimedOut, "was killed");
    wait_for_state(&client, session.id(), SessionState::Dead).await;
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn every_byte_lands_in_the_cell_that_wrote_it() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    // print (Python's buffers), os.write (fd 1 directly), a subprocess (its own fds 1 and 2),
    // C stdio (printf from libc), and stderr, in two cells sent back to back.
    let cell = |n: u32| {
        format!(
            "import os, subprocess, sys, ctypes\n\
             print('print {n}', end='')\n\
             os.write(1, b' os.write {n}')\n\
             sys.stdout.flush()\n\
             subprocess.run(['sh', '-c', 'printf \" child {n}\"; printf \"child err {n}\" >&2'])\n\
             ctypes.CDLL(None).printf(b' libc {n}')\n\
             sys.stderr.write(' stderr {n}')\n\
             {n}"
        )
    };
    let ids = client
        .submit_cells(vec![
            Job::cell(cell(1)).sessions([session.id()]).into_request(),
            Job::cell(cell(2)).sessions([session.id()]).into_request(),
        ])
        .await
        .expect("submit");
    for (n, id) in [(1, ids[0]), (2, ids[1])] {
        let events = collect(client.follow(id, 0).await.expect("follow")).await;
        let outcome = only_result(&events);
        assert!(outcome.succeeded(), "{outcome:?}");
        assert_eq!(outcome.value_repr, n.to_string());
        let stdout =
            String::from_utf8_lossy(&output(&events, id, OutputStream::Stdout)).into_owned();
        assert_eq!(stdout, format!("print {n} os.write {n} child {n} libc {n}"));
        let stderr =
            String::from_utf8_lossy(&output(&events, id, OutputStream::Stderr)).into_owned();
        assert_eq!(stderr, format!("child err {n} stderr {n}"));
    }
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn a_cell_prints_100_mb_and_every_byte_arrives() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    let code = "import sys\nline = ('y' * 1023 + '\\n').encode()\nblock = line * 1024\nfor _ in range(100):\n    sys.stdout.buffer.write(block)\n'done'";
    let mut cell = session.execute(code).await.expect("execute");
    let mut bytes = 0usize;
    let mut wrong = 0usize;
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(event) = cell.try_next().await.expect("events") {
            match event {
                CellEvent::Output { data, .. } => {
                    bytes += data.len();
                    wrong += data.iter().filter(|&&b| b != b'y' && b != b'\n').count();
                }
                CellEvent::Done { result, .. } => return result,
            }
        }
        panic!("no result");
    })
    .await
    .expect("the cell ended in time");
    assert_eq!(
        result,
        CellResult::Ok {
            value_repr: "'done'".into()
        }
    );
    assert_eq!(bytes, 100 << 20);
    assert_eq!(wrong, 0);
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn a_cell_running_when_the_hub_is_sigkilled_ends_with_all_its_output() {
    let mut cluster = Cluster::hub();
    // A small outbox, so that what the cell writes while the hub is down goes to spill files.
    cluster.add_engine(&["--outbox-memory", "256KiB"]);
    cluster.wait_for_engines(1).await;
    let client = cluster.client().await;
    let session = open(&client, SessionOptions::python()).await;
    run_cell(&session, "x = 'kept'").await;
    let copy = cluster.dir().join("written");
    let code = format!(
        "import os, sys, time\n\
         with open('{}', 'wb') as copy:\n\
         \x20   for _ in range(60):\n\
         \x20       data = os.urandom(100000)\n\
         \x20       sys.stdout.buffer.write(data)\n\
         \x20       sys.stdout.flush()\n\
         \x20       copy.write(data)\n\
         \x20       time.sleep(0.05)\n\
         len(x)",
        copy.display()
    );
    let id = client
        .submit(Job::cell(code).sessions([session.id()]))
        .await
        .expect("submit")[0];
    let started = eventually(PATIENCE, || async {
        match client.task(id).await {
            Ok(info) if info.output_bytes >= 500_000 => Ok(()),
            _ => Err(()),
        }
    })
    .await;
    assert!(started.is_ok(), "the cell never wrote 500 kB");

    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    drop((client, session));
    let done = eventually(PATIENCE, || async {
        match std::fs::metadata(&copy) {
            Ok(meta) if meta.len() == 6_000_000 => Ok(()),
            _ => Err(()),
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the cell did not finish while the hub was down"
    );

    cluster.start_hub(&[]);
    cluster.wait_for_engines(1).await;
    let client = cluster.client().await;
    let events = collect(client.follow(id, 0).await.expect("follow from 0")).await;
    let outcome = only_result(&events);
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.value_repr, "4");
    let written = std::fs::read(&copy).expect("the cell's copy");
    let received = output(&events, id, OutputStream::Stdout);
    assert_eq!(received.len(), written.len());
    assert_eq!(digest(&received), digest(&written));
    assert_contiguous(&events, id, 0);

    // The session and its state came through the restart.
    let sessions = client.list_sessions("", false).await.expect("list");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].state(), SessionState::Idle, "{sessions:?}");
    let events = collect(
        client
            .run(Job::cell("x").sessions([sessions[0].id]))
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(only_result(&events).value_repr, "'kept'");
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn the_custom_adapter_written_from_the_protocol_document_is_a_session() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let adapter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cells/custom_adapter.py");
    let adapter = adapter.display().to_string();
    let session = open(
        &client,
        SessionOptions::custom(["python3", adapter.as_str()]),
    )
    .await;
    assert_eq!(session.info().banner, "stack calculator 1");
    assert_eq!(run_cell(&session, "6 7 * =x").await.value(), "");
    let ran = run_cell(&session, "x . x 1 +").await;
    assert_eq!(ran.value(), "43");
    assert_eq!(ran.stdout_text(), "42\n");
    let ran = run_cell(&session, "1 0 /").await;
    assert_eq!(ran.error().0, "ZeroDivision");
    let ran = run_cell(&session, "nonsense").await;
    let (name, value, traceback) = ran.error();
    assert_eq!((name, value), ("UnknownWord", "nonsense"));
    assert!(traceback.starts_with("  at word 1 of cell "), "{traceback}");
    // Its interrupt, as the document says.
    let mut cell = session.execute("spin").await.expect("execute");
    first_output(&mut cell).await;
    session.interrupt().await.expect("interrupt");
    let (result, _) = finish(&mut cell).await;
    assert!(
        matches!(&result, CellResult::Error { name, .. } if name == "Interrupted"),
        "{result:?}"
    );
    assert_eq!(run_cell(&session, "x").await.value(), "42");
}
