//! The `warren-hub` binary's command line: help, usage errors, key generation.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren-hub"))
}

#[test]
fn help_describes_the_socket_flag() {
    let output = hub().arg("--help").output().expect("run");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("--socket"), "{text}");
    assert!(text.contains("--key-file"), "{text}");
}

#[test]
fn a_usage_error_exits_64() {
    let output = hub().arg("--no-such-flag").output().expect("run");
    assert_eq!(output.status.code(), Some(64));
}

#[test]
fn new_key_file_writes_a_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    let output = hub()
        .arg("--new-key-file")
        .arg(&path)
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    let mode = std::fs::metadata(&path).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).expect("key");
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn a_group_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "ab".repeat(32)).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = hub()
        .arg("--socket")
        .arg(dir.path().join("hub.sock"))
        .arg("--key-file")
        .arg(&key)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("too open") && text.contains("chmod 600"),
        "{text}"
    );
}

#[test]
fn an_engine_timeout_under_two_heartbeats_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = hub()
        .arg("--socket")
        .arg(dir.path().join("hub.sock"))
        .args(["--heartbeat-ms", "1000", "--engine-timeout-ms", "1000"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("--engine-timeout-ms 1000 is under two heartbeats")
            && text.contains("Give --engine-timeout-ms 2000 or more"),
        "{text}"
    );
    assert!(
        !dir.path().join("hub.sock").exists(),
        "refused before serving"
    );
}
