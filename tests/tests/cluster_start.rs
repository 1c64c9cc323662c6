//! `warren cluster start` next to a running cluster, from the environment, and what its tasks
//! see of warren.

use std::path::Path;
use std::process::Command;
use warren_tests::*;

/// `warren cluster start` with its runtime and state directories inside the test's.
fn cluster_start(dir: &Path) -> Command {
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let mut command = Command::new(binary("warren"));
    command
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("RUST_LOG");
    for var in warren_proto::OWN_ENV_VARS {
        command.env_remove(var);
    }
    command
}

#[tokio::test]
async fn a_second_cluster_start_on_a_busy_socket_leaves_the_first_alone_and_says_whose_it_is() {
    let mut cluster = Cluster::with_engines(1).await;
    let before = cluster.client().await.engines().await.expect("engines");
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let socket = cluster.socket.display().to_string();

    let output = cluster_start(cluster.dir())
        .args(["--socket", &socket, "cluster", "start", "-n", "1"])
        .output()
        .expect("run warren cluster start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(255), "{output:?}");
    assert!(output.stdout.is_empty(), "it claimed a cluster: {output:?}");
    assert!(stderr.contains(&format!("pid {hub_pid}")), "{stderr}");
    assert!(
        stderr.contains(&format!("`warren --socket {socket} shutdown`")),
        "{stderr}"
    );

    // The first cluster is untouched: same hub (and connection file), same engine, working.
    assert!(
        cluster.hub.as_mut().expect("hub").try_wait().is_none(),
        "the first hub died"
    );
    let info = warren_proto::connection::ConnectionInfo::load(&cluster.connection_file)
        .expect("the first hub's connection file");
    assert_eq!(info.hub_pid, hub_pid);
    let client = cluster.client().await;
    let after = client.engines().await.expect("engines");
    assert_eq!(
        after.iter().map(|e| (&e.uuid, e.pid)).collect::<Vec<_>>(),
        before.iter().map(|e| (&e.uuid, e.pid)).collect::<Vec<_>>()
    );
    let (status, stdout, _) = cluster.cli(&["sh", "echo still here"]);
    assert_eq!((status, stdout.as_str()), (0, "still here\n"));
    // And nothing was left behind: no engine ever started, so no spill directory.
    let left: Vec<_> = std::fs::read_dir(cluster.dir().join("runtime"))
        .expect("runtime dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn cluster_start_from_warren_socket_gives_tasks_none_of_warrens_environment() {
    let cluster = Cluster::empty();
    let socket = cluster.dir().join("env.sock");
    let mut command = cluster_start(cluster.dir());
    let db = cluster.dir().join("from-the-environment.db");
    command
        .env("WARREN_SOCKET", &socket)
        // A hub setting: passed on as a flag, not as a variable.
        .env("WARREN_DB", &db)
        // What a shell leaves for a program it starts through nohup.
        .env("_", "/usr/bin/nohup")
        .args(["cluster", "start", "-n", "1", "--", "env"]);
    let mut process = Proc::spawn(
        "warren cluster start",
        command,
        cluster.dir().join("cluster.log"),
    );
    let text = eventually(PATIENCE, || {
        let text = process.output();
        async move {
            if text.contains("WARREN_TASK_ID=") {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await
    .unwrap_or_else(|text| panic!("the task's env never came:\n{text}"));
    assert!(
        text.contains(&format!("hub on {}", socket.display())),
        "{text}"
    );
    let env: Vec<&str> = text
        .lines()
        .filter(|l| l.contains('=') && !l.starts_with(' ') && !l.starts_with("warren"))
        .collect();
    assert!(
        env.iter().any(|l| l.starts_with("WARREN_ENGINE_PID=")),
        "{text}"
    );
    for unwanted in [
        "RUST_LOG=",
        "WARREN_SOCKET=",
        "WARREN_CONNECTION_FILE=",
        "_=",
    ] {
        assert!(
            !env.iter().any(|l| l.starts_with(unwanted)),
            "a task saw {unwanted}:\n{text}"
        );
    }
    process.signal(rustix::process::Signal::INT);
    let status = process
        .wait_for_exit(PATIENCE)
        .await
        .expect("exits on Ctrl-C");
    assert!(status.success(), "{status}\n{}", process.output());
}
