//! The `warren` CLI against a real hub: output, exit statuses, attach, tasks, cluster start.

use rustix::process::Signal;
use std::process::Command;
use std::time::Duration;
use warren_tests::*;

#[tokio::test]
async fn exec_all_prefixes_each_engine_and_exits_zero() {
    let cluster = Cluster::with_engines(2).await;
    let (status, stdout, stderr) = cluster.cli(&["exec", "--all", "--", "uname", "-a"]);
    assert_eq!(status, 0, "{stderr}");
    let uname = String::from_utf8(
        Command::new("uname")
            .arg("-a")
            .output()
            .expect("uname")
            .stdout,
    )
    .expect("text");
    for engine in [1, 2] {
        assert!(
            stdout.contains(&format!("[engine {engine}] {}", uname.trim())),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn one_task_passes_its_bytes_and_exit_status_through() {
    let cluster = Cluster::with_engines(1).await;
    let (status, stdout, stderr) = cluster.cli(&["sh", "echo to-out; echo to-err >&2; exit 3"]);
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (3, "to-out\n", "to-err\n")
    );
    let (status, _, _) = cluster.cli(&["sh", "kill -TERM $$"]);
    assert_eq!(status, 128 + 15);
    let (status, _, stderr) = cluster.cli(&["exec", "--timeout", "0.2", "--", "sleep", "30"]);
    assert_eq!(status, 124, "{stderr}");
    assert!(stderr.contains("timed-out"), "{stderr}");
}

#[tokio::test]
async fn several_tasks_exit_nonzero_if_any_failed_and_say_which() {
    let cluster = Cluster::with_engines(2).await;
    let (status, _, stderr) =
        cluster.cli(&["sh", "--all", "[ \"$WARREN_T\" = x ] && exit 0; exit 5"]);
    assert_eq!(status, 1);
    assert!(stderr.contains("failed: exited with status 5"), "{stderr}");
    let (status, _, _) = cluster.cli(&[
        "sh",
        "--all",
        "--env",
        "WARREN_T=x",
        "[ \"$WARREN_T\" = x ] && exit 0; exit 5",
    ]);
    assert_eq!(status, 0);
}

#[tokio::test]
async fn detach_then_attach_result_and_tasks() {
    let cluster = Cluster::with_engines(1).await;
    let (status, stdout, _) =
        cluster.cli(&["exec", "--detach", "--", "sh", "-c", "echo one; echo two"]);
    assert_eq!(status, 0);
    let id = stdout.trim().to_owned();
    let (status, stdout, _) = cluster.cli(&["attach", &id]);
    assert_eq!((status, stdout.as_str()), (0, "one\ntwo\n"));
    // Replaying from later on: seq 0 is queued, 1 running, then output.
    let (status, stdout, _) = cluster.cli(&["attach", &id, "--from", "3"]);
    assert_eq!(status, 0);
    assert!("one\ntwo\n".ends_with(&stdout), "{stdout}");
    let (status, stdout, _) = cluster.cli(&["result", &id]);
    assert_eq!(status, 0);
    assert!(
        stdout.contains("succeeded") && stdout.contains("engine     1"),
        "{stdout}"
    );
    let (status, stdout, _) = cluster.cli(&["tasks", "--state", "succeeded"]);
    assert_eq!(status, 0);
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with(&id)),
        "{stdout}"
    );
    let (status, _, stderr) = cluster.cli(&["tasks", "--state", "sleepy"]);
    assert_eq!(status, 64);
    assert!(stderr.contains("--state"), "{stderr}");
    let (status, _, stderr) = cluster.cli(&["attach", "424242"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[tokio::test]
async fn engines_and_queue_list_what_is_there() {
    let cluster = Cluster::with_engines(2).await;
    let (status, stdout, _) = cluster.cli(&["engines"]);
    assert_eq!(status, 0);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let (status, stdout, _) = cluster.cli(&["queue"]);
    assert_eq!(status, 0);
    assert!(stdout.contains("waiting for any engine: 0"), "{stdout}");
}

#[tokio::test]
async fn cluster_start_runs_a_command_on_its_engines_and_stops_everything_on_ctrl_c() {
    let cluster = Cluster::empty();
    let socket = cluster.dir().join("cluster.sock");
    let mut command = Command::new(binary("warren"));
    command.arg("--socket").arg(&socket).args([
        "cluster",
        "start",
        "-n",
        "2",
        "--",
        "echo",
        "hello from an engine",
    ]);
    // The hub's history and the engines' spill files stay in the test's directory.
    command
        .env("XDG_STATE_HOME", cluster.dir().join("state"))
        .env("XDG_RUNTIME_DIR", cluster.dir());
    let log = cluster.dir().join("cluster.log");
    let mut process = Proc::spawn("warren cluster start", command, log);
    let greeted = eventually(PATIENCE, || {
        let text = process.output();
        async move {
            let lines = text
                .lines()
                .filter(|l| l.ends_with("] hello from an engine"))
                .count();
            if lines == 2 { Ok(text) } else { Err(text) }
        }
    })
    .await;
    let text = greeted
        .unwrap_or_else(|text| panic!("cluster start did not greet from both engines:\n{text}"));
    assert!(text.contains("ready in"), "{text}");
    // Every hint names the socket, which is not the default one.
    let warren = format!("warren --socket {}", socket.display());
    assert!(
        text.contains(&format!("{warren} exec --all -- uname -a")),
        "{text}"
    );
    assert!(text.contains(&format!("{warren} shutdown")), "{text}");

    // Another process reaches the cluster through the socket it printed.
    let output = Command::new(binary("warren"))
        .arg("--socket")
        .arg(&socket)
        .args(["exec", "--all", "--", "uname", "-a"])
        .output()
        .expect("warren exec");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("[engine 1]") && stdout.contains("[engine 2]"),
        "{stdout}"
    );

    let client = warren::Client::connect(socket.with_extension("json"))
        .await
        .expect("connect");
    let mut pids: Vec<u32> = client
        .engines()
        .await
        .expect("engines")
        .iter()
        .map(|e| e.pid)
        .collect();
    let connection = warren_proto::connection::ConnectionInfo::load(&socket.with_extension("json"));
    pids.push(connection.expect("connection file").hub_pid);
    drop(client);

    process.signal(Signal::INT);
    let status = process
        .wait_for_exit(PATIENCE)
        .await
        .expect("cluster start exits on Ctrl-C");
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket is gone");
    for pid in pids {
        let gone = eventually(Duration::from_secs(5), || async move {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                Err(())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(gone.is_ok(), "process {pid} outlived the cluster");
    }
}
