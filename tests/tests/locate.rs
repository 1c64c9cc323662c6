//! One rule for finding the hub, in every binary: flags beat the environment, and a task sees
//! none of warren's own variables.

use std::ffi::OsStr;
use std::process::Command;
use warren_tests::*;

/// Variables that would lead anything reading them to no hub at all.
const MISLEADING: [(&str, &str); 3] = [
    ("WARREN_SOCKET", "/nonexistent/hub.sock"),
    ("WARREN_KEY_FILE", "/nonexistent/key"),
    ("WARREN_HUB_ID", "nobody"),
];

#[tokio::test]
async fn an_engine_with_a_connection_file_flag_ignores_warren_variables_and_keeps_them_from_tasks()
{
    let mut cluster = Cluster::hub();
    let locate = [
        OsStr::new("--connection-file"),
        cluster.connection_file.as_os_str(),
    ];
    let mut command = cluster.engine_command(&locate, &cluster.dir().join("spill"));
    command.envs(MISLEADING).env("_", "/usr/bin/nohup");
    cluster.push_engine("warren-engine", command);
    cluster.wait_for_engines(1).await;

    let (status, stdout, stderr) = cluster.cli(&[
        "sh",
        "--env",
        "WARREN_HUB_ID=the-task-asked-for-this",
        "env | sort",
    ]);
    assert_eq!(status, 0, "{stderr}");
    let env: Vec<&str> = stdout.lines().collect();
    for unwanted in ["WARREN_SOCKET=", "WARREN_KEY_FILE=", "_="] {
        assert!(
            !env.iter().any(|l| l.starts_with(unwanted)),
            "{unwanted} in:\n{stdout}"
        );
    }
    // The request's own variables win over the rule.
    assert!(
        env.contains(&"WARREN_HUB_ID=the-task-asked-for-this"),
        "{stdout}"
    );
    assert!(
        env.iter().any(|l| l.starts_with("WARREN_TASK_ID=")),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_cli_takes_flags_over_the_environment_and_the_environment_when_no_flag_is_given() {
    let cluster = Cluster::with_engines(1).await;
    // A flag: the misleading variables are ignored.
    let output = cluster
        .cli_command()
        .envs(MISLEADING)
        .args(["sh", "echo by flag"])
        .output()
        .expect("run warren");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "by flag\n",
        "{output:?}"
    );
    // No flag: the environment names the hub.
    let output = Command::new(binary("warren"))
        .env("WARREN_CONNECTION_FILE", &cluster.connection_file)
        .args(["sh", "echo by environment"])
        .output()
        .expect("run warren");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "by environment\n",
        "{output:?}"
    );
    // --socket with a connection file: that file's key through this socket (here the same).
    let output = Command::new(binary("warren"))
        .env("WARREN_CONNECTION_FILE", "/nonexistent/hub.json")
        .arg("--socket")
        .arg(&cluster.socket)
        .args(["sh", "echo beside the socket"])
        .output()
        .expect("run warren");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "beside the socket\n",
        "{output:?}"
    );
}

#[tokio::test]
async fn a_hub_and_its_engines_share_a_key_file_and_the_cli_signs_with_it_without_a_file() {
    let mut cluster = Cluster::empty();
    let key = cluster.dir().join("key");
    let made = Command::new(binary("warren-hub"))
        .arg("--new-key-file")
        .arg(&key)
        .output()
        .expect("make a key");
    assert!(made.status.success(), "{made:?}");
    let key_text = key.display().to_string();
    // WARREN_SOCKET in the environment does not stop a key being made.
    let made = Command::new(binary("warren-hub"))
        .arg("--new-key-file")
        .arg(cluster.dir().join("another-key"))
        .env("WARREN_SOCKET", &cluster.socket)
        .output()
        .expect("make a key");
    assert!(made.status.success(), "{made:?}");
    cluster.start_hub(&["--key-file", &key_text]);
    // The engine by socket and key; the environment says otherwise and is ignored.
    let locate = [
        OsStr::new("--socket"),
        cluster.socket.as_os_str(),
        OsStr::new("--key-file"),
        key.as_os_str(),
    ];
    let mut command = cluster.engine_command(&locate, &cluster.dir().join("spill"));
    command.env("WARREN_CONNECTION_FILE", "/nonexistent/hub.json");
    cluster.push_engine("warren-engine", command);
    cluster.wait_for_engines(1).await;
    let output = Command::new(binary("warren"))
        .arg("--socket")
        .arg(&cluster.socket)
        .arg("--key-file")
        .arg(&key)
        .args(["sh", "echo by key"])
        .output()
        .expect("run warren");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "by key\n",
        "{output:?}"
    );
    // The hub prints its connection file by the same rule.
    let printed = Command::new(binary("warren-hub"))
        .arg("--socket")
        .arg(&cluster.socket)
        .arg("--print-connection")
        .output()
        .expect("print the connection");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success() && text.contains("\"hub_id\""),
        "{printed:?}"
    );
}
