//! `warren completions SHELL` and `warren man [DIR]` come from the same clap definitions as the
//! commands: what they print must know every command, and bash must accept its script.

use std::process::Command;
use warren_tests::*;

/// Runs the real `warren` binary with no hub around; returns (status, stdout, stderr).
fn warren(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("warren"))
        .args(args)
        .output()
        .expect("run warren");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_know_every_command_and_bash_accepts_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let (status, script, stderr) = warren(&["completions", shell]);
        assert_eq!(status, 0, "completions {shell}: {stderr}");
        for command in ["exec", "session", "px", "cp", "map", "wait", "doctor"] {
            assert!(
                script.contains(command),
                "{shell}'s completions miss `{command}`"
            );
        }
    }
    let (_, script, _) = warren(&["completions", "bash"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warren.bash");
    std::fs::write(&path, script).expect("write the script");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        checked.status.success(),
        "bash refuses the completion script: {}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let (status, _, stderr) = warren(&["completions", "tcsh-of-the-future"]);
    assert_eq!(status, 64, "an unknown shell is a usage error: {stderr}");
    assert!(
        stderr.contains("bash"),
        "the error lists the shells: {stderr}"
    );
}

#[test]
fn man_pages_are_written_for_warren_and_each_command() {
    let (status, page, stderr) = warren(&["man"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH"),
        "not roff: {page:.200}"
    );
    assert!(page.contains("warren"), "{page:.200}");

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let (status, _, stderr) = warren(&["man", out.to_str().expect("a UTF-8 path")]);
    assert_eq!(status, 0, "{stderr}");
    for name in [
        "warren.1",
        "warren-exec.1",
        "warren-session.1",
        "warren-map.1",
    ] {
        let text = std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"));
        assert!(text.contains(".TH"), "{name} is not a man page");
    }
}
