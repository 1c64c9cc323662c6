//! The `warren-engine` binary's command line: help and usage errors.

use std::process::Command;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren-engine"))
}

#[test]
fn help_describes_slots_and_labels() {
    let output = engine().arg("--help").output().expect("run");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("--slots") && text.contains("--label"),
        "{text}"
    );
}

#[test]
fn bad_flags_exit_64() {
    for args in [&["--slots", "0"][..], &["--label", "novalue"], &["--bogus"]] {
        let output = engine().args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(64), "{args:?}: {output:?}");
    }
}
