//! The `warren` binary's command line where no hub is needed: help, usage, signing.

use std::ffi::OsStr;
use std::process::Command;

fn warren() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren"))
}

/// Runs `warren ARGS` with nothing on stdin: its exit code and its stderr.
fn fails<I, S>(args: I) -> (Option<i32>, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = warren().args(args).output().expect("run");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), text)
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
    let (code, _) = fails(["exec", "--all"]);
    assert_eq!(code, Some(64));
}

#[test]
fn without_a_hub_commands_say_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let none = dir.path().join("none.json");
    let (code, text) = fails([
        OsStr::new("--connection-file"),
        none.as_os_str(),
        "engines".as_ref(),
    ]);
    assert_eq!(code, Some(255));
    assert!(text.contains("warren cluster start"), "{text}");
}

#[test]
fn sign_refuses_something_that_is_not_a_method_path() {
    let (code, text) = fails(["sign", "ListEngines"]);
    assert_eq!(code, Some(64));
    assert!(text.contains("/warren.v1.Control/ListEngines"), "{text}");
}

#[test]
fn what_the_cli_can_check_is_a_usage_error_naming_the_flag() {
    for (args, flag) in [
        (&["exec", "--timeout", "0", "--", "true"][..], "--timeout"),
        (&["exec", "--timeout=-1", "--", "true"][..], "--timeout"),
        (
            &["exec", "--timeout", "99999999", "--", "true"][..],
            "--timeout",
        ),
        (&["exec", "--env", "NOEQUALS", "--", "true"][..], "--env"),
        (&["exec", "--env", "=x", "--", "true"][..], "--env"),
        (&["interrupt", "--signal", "FOO", "1"][..], "--signal"),
        (&["tasks", "--state", "bogus"][..], "--state"),
        (
            &["exec", "-e", "5", "--where", "x=y", "--", "true"][..],
            "--where",
        ),
        (&["exec", "--retries", "11", "--", "true"][..], "--retries"),
        (&["exec", "--label", "novalue", "--", "true"][..], "--label"),
        (
            &["attach", "1", "--reconnect-timeout", "soon"][..],
            "--reconnect-timeout",
        ),
        (&["sign", "ListEngines"][..], "gRPC method path"),
    ] {
        // Nothing is running: a usage error must be found before any call.
        let (code, text) = fails(
            ["--connection-file", "/nonexistent/hub.json"]
                .iter()
                .chain(args),
        );
        assert_eq!(code, Some(64), "{args:?}: {text}");
        assert!(text.contains(flag), "{args:?}: {text}");
        for field in [
            "targets.",
            "spec.",
            "engine_labels",
            "timeout_ms",
            "the hub said",
        ] {
            assert!(
                !text.contains(field),
                "{args:?} names a proto field: {text}"
            );
        }
    }
}

#[test]
fn a_missing_or_open_connection_file_is_one_line_with_the_hint_only_where_it_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("none.json");
    let engines = |file: &std::path::Path| {
        fails([
            OsStr::new("--connection-file"),
            file.as_os_str(),
            "engines".as_ref(),
        ])
    };
    let (code, text) = engines(&missing);
    assert_eq!(code, Some(255));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        text.matches(&*missing.display().to_string()).count(),
        1,
        "{text}"
    );
    assert!(text.contains("is a hub running?"), "{text}");
    assert!(!text.contains("os error"), "{text}");

    let open = dir.path().join("open.json");
    std::fs::write(&open, "{}").expect("write");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let (code, text) = engines(&open);
    assert_eq!(code, Some(255));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(text.matches("chmod 600").count(), 1, "{text}");
    assert!(
        !text.contains("is a hub running"),
        "not for a permission error: {text}"
    );
}

#[test]
fn help_says_how_the_hub_is_found() {
    let output = warren().arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("flags beat the environment"), "{text}");
    assert!(text.contains("WARREN_SOCKET"), "{text}");
}
