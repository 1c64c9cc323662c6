//! `warren doctor`: every check ok on a sound setup; then each item broken in turn, and the
//! line doctor gives it read back, with a non-zero exit and no panic.

use rustix::process::Signal;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use warren_tests::sshd::{HOST, Sshd};
use warren_tests::*;

/// `warren doctor --json` with these arguments before it and this environment (an empty
/// config home unless `env` names another): its exit status and its checks by name.
fn doctor(
    args: &[&str],
    env: &[(&str, &str)],
    config_home: &Path,
) -> (i32, Vec<(String, String, String)>) {
    let mut command = Command::new(binary("warren"));
    for var in warren_proto::OWN_ENV_VARS {
        command.env_remove(var);
    }
    let output = command
        .env("XDG_CONFIG_HOME", config_home)
        .envs(env.iter().copied())
        .args(args)
        .args(["doctor", "--json"])
        .output()
        .expect("run warren doctor");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{stderr}", String::from_utf8_lossy(&output.stdout)));
    let checks = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
            (field("check"), field("status"), field("detail"))
        })
        .collect();
    (output.status.code().unwrap_or(-1), checks)
}

/// The line for `what`, as (status, detail).
fn line(checks: &[(String, String, String)], what: &str) -> (String, String) {
    checks
        .iter()
        .find(|(name, _, _)| name == what)
        .map(|(_, status, detail)| (status.clone(), detail.clone()))
        .unwrap_or_else(|| panic!("no line for {what}: {checks:#?}"))
}

/// Asserts that `what` failed, saying `words`, and that doctor exited 1.
fn assert_fails(report: &(i32, Vec<(String, String, String)>), what: &str, words: &str) {
    let (status, detail) = line(&report.1, what);
    assert_eq!(status, "fail", "{what}: {detail}");
    assert!(detail.contains(words), "{what}: {detail}");
    assert_eq!(report.0, 1, "doctor exits 1 when a check fails");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn config_home(cluster: &Cluster) -> std::path::PathBuf {
    let home = cluster.dir().join("config");
    std::fs::create_dir_all(home.join("warren")).expect("mkdir");
    home
}

/// A private runtime directory (`XDG_RUNTIME_DIR`) for the laptop's side of a tunnel.
fn runtime_dir(cluster: &Cluster) -> std::path::PathBuf {
    let laptop = cluster.dir().join("laptop");
    std::fs::create_dir(&laptop).expect("mkdir");
    chmod(&laptop, 0o700);
    laptop
}

#[tokio::test]
async fn a_sound_setup_passes_every_check_and_each_broken_file_gets_its_line() {
    let cluster = Cluster::with_engines(1).await;
    let home = config_home(&cluster);
    let connection = cluster.connection_file.to_str().expect("utf-8").to_owned();
    let flags = ["--connection-file", connection.as_str()];

    let (status, checks) = doctor(&flags, &[], &home);
    for (what, result, detail) in &checks {
        assert_eq!(result, "ok", "{what}: {detail}");
    }
    assert_eq!(status, 0);
    for what in [
        "config file",
        "hub",
        "socket directory",
        "socket",
        "connection file",
        "hub answers",
        "hub version",
        "clock",
        "database",
        "engine 1",
    ] {
        line(&checks, what);
    }
    assert!(line(&checks, "database").1.contains("integrity ok"));
    // The text form: a line per check, the status first.
    let output = Command::new(binary("warren"))
        .env("XDG_CONFIG_HOME", &home)
        .args(flags)
        .arg("doctor")
        .output()
        .expect("run warren doctor");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.lines().all(|l| l.starts_with("ok  ")), "{text}");

    chmod(&cluster.connection_file, 0o644);
    assert_fails(&doctor(&flags, &[], &home), "connection file", "chmod 600");
    chmod(&cluster.connection_file, 0o600);

    chmod(cluster.dir(), 0o755);
    let report = doctor(&flags, &[], &home);
    chmod(cluster.dir(), 0o700);
    assert_fails(&report, "socket directory", "chmod 700");

    chmod(&cluster.socket, 0o666);
    let report = doctor(&flags, &[], &home);
    chmod(&cluster.socket, 0o600);
    assert_fails(&report, "socket", "chmod 600");

    // A key file others can read, with --socket and --key-file instead of the file.
    let key = cluster.dir().join("open.key");
    let info =
        warren_proto::connection::ConnectionInfo::load(&cluster.connection_file).expect("load");
    std::fs::write(&key, format!("{}\n", info.key)).expect("write key");
    chmod(&key, 0o644);
    let socket = cluster.socket.to_str().expect("utf-8");
    let key_arg = key.to_str().expect("utf-8");
    assert_fails(
        &doctor(&["--socket", socket, "--key-file", key_arg], &[], &home),
        "key file",
        "chmod 600",
    );

    // A broken config file is named, and the flags still find the hub.
    std::fs::write(home.join("warren/config.toml"), "default = [\n").expect("write");
    chmod(&home.join("warren/config.toml"), 0o600);
    let report = doctor(&flags, &[], &home);
    assert_fails(&report, "config file", "not valid");
    assert_eq!(line(&report.1, "hub answers").0, "ok");
}

#[tokio::test]
async fn a_silent_engine_a_damaged_history_and_a_gone_hub_each_get_their_line() {
    let mut cluster = Cluster::hub_with_engines(
        &["--heartbeat-ms", "100", "--engine-timeout-ms", "60000"],
        1,
    )
    .await;
    // The harness's hub keeps its history here.
    let db_path = cluster.dir().join("hub.db");
    let home = config_home(&cluster);
    let connection = cluster.connection_file.to_str().expect("utf-8").to_owned();
    let flags = ["--connection-file", connection.as_str()];
    let (status, _, _) = cluster.cli(&["exec", "--", "true"]);
    assert_eq!(status, 0);

    // An engine stopped with SIGSTOP: heartbeats late, well before the hub writes it off.
    cluster.engines[0].signal(Signal::STOP);
    let late = eventually(PATIENCE, || {
        let report = doctor(&flags, &[], &home);
        async move {
            let (status, detail) = line(&report.1, "engine 1");
            if status == "fail" {
                Ok((report, detail))
            } else {
                Err(detail)
            }
        }
    })
    .await;
    cluster.engines[0].signal(Signal::CONT);
    let (report, detail) = late.unwrap_or_else(|last| panic!("never reported silent: {last}"));
    assert!(
        detail.contains("silent for") && detail.contains("stopped"),
        "{detail}"
    );
    assert_eq!(report.0, 1);

    // The history damaged under the running hub: its file and log overwritten past the header.
    for (path, keep) in [
        (db_path.clone(), 100),
        (cluster.dir().join("hub.db-wal"), 32),
    ] {
        if let Ok(bytes) = std::fs::read(&path) {
            let mut damaged = bytes.clone();
            for byte in damaged.iter_mut().skip(keep) {
                *byte = 0xa5;
            }
            std::fs::write(&path, damaged).expect("damage");
        }
    }
    assert_fails(&doctor(&flags, &[], &home), "database", "damaged");

    // No hub at all: its lines fail or are skipped, and nothing panics.
    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    let _ = hub.wait_for_exit(PATIENCE).await;
    let report = doctor(&flags, &[], &home);
    assert_fails(&report, "hub answers", "no hub answers");
    assert!(
        line(&report.1, "connection file").1.contains("not running"),
        "{:?}",
        report.1
    );
    for later in ["hub version", "clock", "database", "engines"] {
        assert_eq!(line(&report.1, later).0, "skip", "{later}");
    }
}

#[tokio::test]
async fn slurm_tools_are_checked_when_engines_run_under_slurm() {
    let mut cluster = Cluster::hub();
    cluster.add_engine(&["--label", "slurm_job=42"]);
    cluster.wait_for_engines(1).await;
    let home = config_home(&cluster);
    let connection = cluster.connection_file.to_str().expect("utf-8").to_owned();
    let flags = ["--connection-file", connection.as_str()];
    let empty = cluster.dir().join("empty-bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let report = doctor(&flags, &[("PATH", empty.to_str().expect("utf-8"))], &home);
    assert_fails(&report, "slurm", "sbatch, squeue, scancel are not on PATH");

    // Slurm's client tools on PATH (stand-ins: doctor only looks for them).
    let tools = cluster.dir().join("slurm-bin");
    std::fs::create_dir(&tools).expect("mkdir");
    for tool in ["sbatch", "squeue", "scancel"] {
        std::fs::write(tools.join(tool), "#!/bin/sh\n").expect("write");
        chmod(&tools.join(tool), 0o755);
    }
    let (status, checks) = doctor(&flags, &[("PATH", tools.to_str().expect("utf-8"))], &home);
    assert_eq!(
        line(&checks, "slurm"),
        (
            "ok".into(),
            "engine(s) 1 run under Slurm; sbatch, squeue and scancel are on PATH".into()
        )
    );
    assert_eq!(status, 0, "{checks:?}");
}

#[tokio::test]
async fn a_remote_hub_needs_ssh_and_its_tunnel_up() {
    let cluster = Cluster::with_engines(1).await;
    let home = config_home(&cluster);
    let laptop = runtime_dir(&cluster);
    let runtime = laptop.to_str().expect("utf-8");
    std::fs::write(
        home.join("warren/config.toml"),
        "[hubs.far]\nhost = \"nowhere.invalid\"\nssh = \"/nonexistent/ssh\"\n",
    )
    .expect("write");
    let report = doctor(&["--hub", "far"], &[("XDG_RUNTIME_DIR", runtime)], &home);
    assert_fails(&report, "ssh", "/nonexistent/ssh` is not on PATH");
    assert_fails(&report, "tunnel far", "not up");
    assert_eq!(
        line(&report.1, "hub answers"),
        ("skip".into(), "the tunnel is not up".into())
    );
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn a_remote_hubs_tunnel_is_checked_end_to_end_over_ssh() {
    let cluster = Cluster::with_engines(1).await;
    let home = config_home(&cluster);
    let laptop = runtime_dir(&cluster);
    let runtime = laptop.to_str().expect("utf-8");
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    std::fs::write(
        home.join("warren/config.toml"),
        format!(
            "[hubs.lab]\nhost = \"{HOST}\"\nremote_socket = \"{}\"\nremote_hub_command = \"{}\"\nssh = \"{}\"\n",
            cluster.socket.display(),
            binary("warren-hub").display(),
            sshd.ssh_command()
        ),
    )
    .expect("write");
    let env = [("XDG_RUNTIME_DIR", runtime)];
    let report = doctor(&["--hub", "lab"], &env, &home);
    assert_eq!(line(&report.1, "ssh").0, "ok");
    assert_fails(
        &report,
        "tunnel lab",
        "answers over ssh: start it with `warren --hub lab tunnel --background`",
    );

    let mut tunnel = Command::new(binary("warren"));
    tunnel
        .env("XDG_CONFIG_HOME", &home)
        .env("XDG_RUNTIME_DIR", runtime)
        .args(["--hub", "lab", "tunnel"]);
    let tunnel = Proc::spawn("warren tunnel", tunnel, cluster.dir().join("tunnel.log"));
    tunnel.wait_for_output("tunnel lab:").await;
    let (status, checks) = doctor(&["--hub", "lab"], &env, &home);
    assert_eq!(line(&checks, "tunnel lab").0, "ok", "{checks:?}");
    assert_eq!(line(&checks, "engine 1").0, "ok", "{checks:?}");
    assert_eq!(status, 0, "{checks:?}");
}
