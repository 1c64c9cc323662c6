//! The config file's named hubs: `--hub NAME`, `WARREN_HUB`, the file's `default`, and the
//! order between them (flags beat the environment, which beats the file), for the CLI and for
//! engines; a remote hub through its tunnel over a real sshd.

use std::path::{Path, PathBuf};
use std::process::Command;
use warren_tests::sshd::{HOST, Sshd};
use warren_tests::*;

/// Writes `$XDG_CONFIG_HOME/warren/config.toml` in the cluster's dir; returns XDG_CONFIG_HOME.
fn write_config(cluster: &Cluster, text: &str) -> PathBuf {
    let home = cluster.dir().join("config");
    std::fs::create_dir_all(home.join("warren")).expect("mkdir");
    std::fs::write(home.join("warren/config.toml"), text).expect("write config");
    home
}

/// `warren` with that config and none of warren's variables but those in `env`.
fn warren(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(binary("warren"));
    for var in warren_proto::OWN_ENV_VARS {
        command.env_remove(var);
    }
    command
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", home)
        .envs(env.iter().copied())
        .args(args);
    let output = command.output().expect("run warren");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn named_hubs_are_chosen_by_flag_then_environment_then_the_files_default() {
    let cluster = Cluster::with_engines(1).await;
    let dead = cluster.dir().join("dead.sock");
    let home = write_config(
        &cluster,
        &format!(
            "default = \"here\"\n\n[hubs.here]\nconnection_file = \"{}\"\n\n[hubs.gone]\nsocket = \"{}\"\nkey_file = \"/nonexistent/key\"\n",
            cluster.connection_file.display(),
            dead.display()
        ),
    );

    // Nothing given: the file's default.
    let (status, ids, stderr) = warren(&home, &[], &["engines", "-q"]);
    assert_eq!((status, ids.trim()), (0, "1"), "{stderr}");
    // -v says which hub and why.
    let (status, _, log) = warren(&home, &[], &["-v", "version"]);
    assert_eq!(status, 0, "{log}");
    assert!(log.contains("the default hub here from"), "{log}");

    // The environment beats the file: WARREN_HUB, and any other WARREN_* variable.
    let (status, _, stderr) = warren(&home, &[("WARREN_HUB", "gone")], &["engines"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("/nonexistent/key"), "{stderr}");
    let (status, _, stderr) = warren(
        &home,
        &[("WARREN_SOCKET", dead.to_str().expect("utf-8"))],
        &["engines"],
    );
    assert_eq!(status, 255, "WARREN_SOCKET, not the default hub: {stderr}");

    // Flags beat the environment: --hub, and any other flag.
    let (status, _, stderr) = warren(
        &home,
        &[("WARREN_HUB", "gone")],
        &["--hub", "here", "engines"],
    );
    assert_eq!(status, 0, "{stderr}");
    let connection = cluster.connection_file.to_str().expect("utf-8");
    let (status, _, stderr) = warren(
        &home,
        &[("WARREN_HUB", "gone")],
        &["--connection-file", connection, "engines"],
    );
    assert_eq!(status, 0, "{stderr}");
    // Beside --hub, a flag wins over the hub's own setting.
    let (status, _, stderr) = warren(
        &home,
        &[],
        &[
            "--hub",
            "here",
            "--socket",
            dead.to_str().expect("utf-8"),
            "engines",
        ],
    );
    assert_eq!(status, 255, "--socket beside --hub: {stderr}");

    let (status, _, stderr) = warren(&home, &[], &["--hub", "nope", "engines"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("no hub called nope") && stderr.contains("gone, here"),
        "{stderr}"
    );

    // An engine finds the hub by the same rule: --hub, then WARREN_HUB.
    let mut cluster = cluster;
    let spill = cluster.dir().join("spill-config");
    let mut engine = cluster.engine_command(&["--hub".as_ref(), "here".as_ref()], &spill);
    engine
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("WARREN_CONNECTION_FILE");
    cluster.push_engine("engine by --hub", engine);
    let mut engine = cluster.engine_command(&[], &spill);
    engine
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("WARREN_CONNECTION_FILE")
        .env("WARREN_HUB", "here");
    cluster.push_engine("engine by WARREN_HUB", engine);
    cluster.wait_for_engines(3).await;
}

#[tokio::test]
async fn a_broken_config_file_is_named_with_what_is_wrong() {
    let cluster = Cluster::hub();
    let home = write_config(&cluster, "default = \"x\"\n[hubs.x]\nsockett = \"/s\"\n");
    let (status, _, stderr) = warren(&home, &[], &["engines"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("config.toml") && stderr.contains("unknown field `sockett`"),
        "{stderr}"
    );
    // Flags don't need the file.
    let connection = cluster.connection_file.to_str().expect("utf-8");
    let (status, _, stderr) = warren(&home, &[], &["--connection-file", connection, "engines"]);
    assert_eq!(status, 0, "{stderr}");

    // A file others may write could send every call elsewhere: refused, as ssh refuses one.
    let path = home.join("warren/config.toml");
    std::fs::write(
        &path,
        format!("[hubs.x]\nconnection_file = \"{connection}\"\n"),
    )
    .expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let (status, _, stderr) = warren(&home, &[], &["--hub", "x", "engines"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("chmod go-w"), "{stderr}");
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "needs sshd: apt-get install openssh-server")]
async fn a_remote_hub_is_reached_through_the_tunnel_its_entry_describes() {
    let cluster = Cluster::with_engines(1).await;
    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let laptop = cluster.dir().join("laptop");
    std::fs::create_dir_all(&laptop).expect("mkdir");
    std::fs::set_permissions(&laptop, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let home = write_config(
        &cluster,
        &format!(
            "[hubs.lab]\nhost = \"{HOST}\"\nremote_socket = \"{}\"\nremote_hub_command = \"{}\"\nssh = \"{}\"\n",
            cluster.socket.display(),
            binary("warren-hub").display(),
            sshd.ssh_command()
        ),
    );
    let runtime = laptop.to_str().expect("utf-8");
    let env = [("XDG_RUNTIME_DIR", runtime)];

    let (status, _, stderr) = warren(&home, &env, &["--hub", "lab", "engines"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("warren --hub lab tunnel"), "{stderr}");

    let (status, stdout, stderr) = warren(&home, &env, &["--hub", "lab", "tunnel", "--background"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    let (status, ids, stderr) = warren(&home, &env, &["--hub", "lab", "engines", "-q"]);
    let (stop, _, stop_err) = warren(&home, &env, &["tunnel", "--stop", "lab"]);
    assert_eq!((status, ids.trim()), (0, "1"), "{stderr}");
    assert_eq!(stop, 0, "{stop_err}");
}
