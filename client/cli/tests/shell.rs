//! Shell completions and man pages, generated from the same clap definitions as `--help`.

use std::process::Command;

fn warren(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .output()
        .expect("run warren");
    assert!(output.status.success(), "warren {args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// What bash offers after `words` (the last one being completed), with the script loaded.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = warren(&["completions", "bash"]);
    let words_array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let current = words.last().copied().unwrap_or("");
    let previous = words.len().checked_sub(2).map_or("", |i| words[i]);
    let program = format!(
        "{script}\nCOMP_WORDS=({}); COMP_CWORD={}; _warren warren '{current}' '{previous}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words_array.join(" "),
        words.len() - 1
    );
    let output = Command::new("bash")
        .args(["-c", &program])
        .output()
        .expect("run bash");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_commands_flags_and_values() {
    assert_eq!(bash_completes(&["warren", "eng"]), ["engines"]);
    assert_eq!(bash_completes(&["warren", "tasks", "--st"]), ["--state"]);
    let shells = bash_completes(&["warren", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
    assert!(bash_completes(&["warren", "--j"]).contains(&"--json".to_owned()));
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let zsh = warren(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef warren"), "{}", &zsh[..40]);
    let fish = warren(&["completions", "fish"]);
    for command in ["exec", "tasks", "doctor", "tunnel", "completions", "man"] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh lacks {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish lacks {command}"
        );
    }
}

#[test]
fn man_pages_cover_every_command_and_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let status = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("man")
        .arg(&out)
        .status()
        .expect("run warren man");
    assert!(status.success());
    for page in [
        "warren.1",
        "warren-exec.1",
        "warren-cluster-start.1",
        "warren-doctor.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {name} 1")), "{page}:\n{text}");
    }
    let exec = std::fs::read_to_string(out.join("warren-exec.1")).expect("read");
    assert!(exec.contains("reconnect\\-timeout"), "{exec}");
    assert_eq!(
        warren(&["man"]),
        std::fs::read_to_string(out.join("warren.1")).expect("read")
    );
    // Rendered by man(1) where it is installed, as a reader would see it.
    if let Ok(output) = Command::new("man")
        .env("MANWIDTH", "100")
        .arg("-l")
        .arg(out.join("warren.1"))
        .output()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains("SUBCOMMANDS"),
            "{text}"
        );
    } else {
        eprintln!("man(1) is not installed: the pages were checked as text only");
    }
}
