//! The `warren` binary's command line where no hub is needed: help, usage, signing.

use std::process::Command;

fn warren() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren"))
}

#[test]
fn help_lists_every_command() {
    let output = warren().arg("--help").output().expect("run");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in [
        "exec",
        "sh",
        "engines",
        "tasks",
        "result",
        "attach",
        "interrupt",
        "abort",
        "shutdown",
        "sign",
        "cluster",
    ] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
}

#[test]
fn exec_needs_a_command_after_the_double_dash() {
    let output = warren().args(["exec", "--all"]).output().expect("run");
    assert_eq!(output.status.code(), Some(64));
}

#[test]
fn without_a_hub_commands_say_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = warren()
        .arg("--connection-file")
        .arg(dir.path().join("none.json"))
        .arg("engines")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(255));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("warren cluster start"), "{text}");
}

#[test]
fn sign_refuses_something_that_is_not_a_method_path() {
    let output = warren()
        .args(["sign", "ListEngines"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(64));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("/warren.v1.Control/ListEngines"), "{text}");
}
