//! `warren cluster start --daemon` detaches once its hub and engines are up, with its pid and
//! log beside the socket, and `warren cluster stop` ends it cleanly: hub, engines, files.

use std::path::{Path, PathBuf};
use std::process::Command;
use warren_tests::*;

/// Kills the detached cluster named by a pid file if a test ends without stopping it (its
/// hub and engines die with it).
struct Detached(PathBuf);

impl Drop for Detached {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

fn warren(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary("warren"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env("XDG_STATE_HOME", socket.parent().expect("dir"))
        .output()
        .expect("run warren");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_detached_cluster_is_found_and_stopped_by_its_pid_file() {
    let cluster = Cluster::empty();
    let socket = cluster.socket.clone();
    let pid_file = cluster.dir().join("hub.cluster.pid");
    let log = cluster.dir().join("hub.cluster.log");
    let _guard = Detached(pid_file.clone());

    let (status, stdout, stderr) = warren(&socket, &["cluster", "start", "--daemon", "-n", "2"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("cluster up in the background"), "{stdout}");
    assert!(stdout.contains(&pid_file.display().to_string()), "{stdout}");
    assert_eq!(mode(&pid_file), 0o600);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid");
    assert!(alive(pid));
    assert!(
        std::fs::read_to_string(&log)
            .expect("log")
            .contains("ready in")
    );

    // It serves, with its engines, after the command that started it has returned.
    let (status, engines, stderr) = warren(&socket, &["engines", "--json"]);
    assert_eq!(status, 0, "{stderr}");
    let engines: serde_json::Value = serde_json::from_str(&engines).expect("json");
    let engine_pids: Vec<u32> = engines["engines"]
        .as_array()
        .expect("engines")
        .iter()
        .map(|e| e["pid"].as_u64().expect("pid") as u32)
        .collect();
    assert_eq!(engine_pids.len(), 2);
    let hub_pid = warren_proto::connection::ConnectionInfo::load(&cluster.connection_file)
        .expect("connection file")
        .hub_pid;

    let (status, _, stderr) = warren(&socket, &["cluster", "start", "--daemon"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("cluster stop") && stderr.contains(&pid.to_string()),
        "{stderr}"
    );

    let (status, stdout, stderr) = warren(&socket, &["cluster", "stop"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("cluster stopped"), "{stdout}");
    for (what, pid) in [("the cluster", pid), ("the hub", hub_pid)]
        .into_iter()
        .chain(engine_pids.iter().map(|&p| ("an engine", p)))
    {
        let gone = eventually(PATIENCE, || async move {
            if alive(pid) { Err(()) } else { Ok(()) }
        })
        .await;
        assert!(gone.is_ok(), "{what} (pid {pid}) still runs");
    }
    assert!(!pid_file.exists() && !socket.exists() && !cluster.connection_file.exists());
    let (status, _, stderr) = warren(&socket, &["cluster", "stop"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("no cluster started with --daemon"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_stale_pid_file_is_never_taken_for_a_cluster() {
    let cluster = Cluster::empty();
    let pid_file = cluster.dir().join("hub.cluster.pid");
    // This very process, with another start time: a recycled pid, not the cluster.
    std::fs::write(&pid_file, format!("{} 1\n", std::process::id())).expect("write");
    let (status, stdout, stderr) = warren(&cluster.socket, &["cluster", "stop"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("stale pid file"), "{stdout}");
    assert!(!pid_file.exists());
}
