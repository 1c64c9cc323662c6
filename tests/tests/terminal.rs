//! `warren exec -t` and `warren shell` driven from a real terminal (a pseudo-terminal whose
//! other side is warren's stdin, stdout, stderr and controlling terminal): a remote bash
//! prompt, the size the terminal has, a resize, Ctrl-C that interrupts a remote command and
//! leaves the shell, the shell's exit status, and the local terminal as it was after.

use rustix::termios::{LocalModes, Termios};
use warren_tests::*;

/// Whether the terminal is in raw mode (no line editing, echo or signals from keys).
fn is_raw(settings: &Termios) -> bool {
    !settings
        .local_modes
        .intersects(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG)
}

fn assert_same(before: &Termios, after: &Termios) {
    assert_eq!(after.local_modes, before.local_modes);
    assert_eq!(after.input_modes, before.input_modes);
    assert_eq!(after.output_modes, before.output_modes);
    assert_eq!(after.control_modes, before.control_modes);
    assert_eq!(
        format!("{:?}", after.special_codes),
        format!("{:?}", before.special_codes)
    );
}

#[tokio::test]
async fn a_remote_bash_on_a_terminal_behaves_like_one_over_ssh() {
    if require_tool("bash", &[], "WARREN_REQUIRE_BASH").is_none() {
        return;
    }
    let cluster = Cluster::with_engines(1).await;
    let mut command = cluster.cli_command();
    command.args([
        "exec",
        "-t",
        "--env",
        "PS1=remote-prompt$ ",
        "bash",
        "--norc",
        "--noprofile",
        "-i",
    ]);
    let probe = Terminal::spawn(std::process::Command::new("true"), 33, 101);
    let before = probe.settings();
    drop(probe);

    let mut term = Terminal::spawn(command, 33, 101);
    term.wait_for(0, "remote-prompt$ ").await;
    term.wait_for_settings("raw", is_raw).await;

    // The size the terminal had when warren started.
    let mark = term.mark();
    term.type_in(b"stty size\r");
    term.wait_for(mark, "33 101").await;

    // A resize reaches the remote side (SIGWINCH here, a new size there).
    term.resize(40, 120);
    let resized = eventually(PATIENCE, || {
        let mark = term.mark();
        term.type_in(b"stty size\r");
        let term = &term;
        async move {
            let shown = term.wait_for(mark, "remote-prompt$ ").await;
            if shown.contains("40 120") {
                Ok(())
            } else {
                Err(shown)
            }
        }
    })
    .await;
    assert!(resized.is_ok(), "{resized:?}");

    // Ctrl-C travels as a byte: the remote terminal interrupts the command, not the shell.
    let mark = term.mark();
    term.type_in(b"echo started-$((1+1)); sleep 30; echo slept\r");
    term.wait_for(mark, "started-2").await;
    term.type_in(b"\x03");
    let mark = term.mark();
    term.type_in(b"echo code=$?\r");
    let shown = term.wait_for(mark, "code=130").await;
    assert!(!term.screen().contains("\nslept"), "{shown:?}");

    term.type_in(b"exit 7\r");
    let status = term.wait_for_exit().await;
    assert_eq!(status.code(), Some(7), "{:?}", term.screen());
    assert_same(&before, &term.settings());
}

#[tokio::test]
async fn warren_shell_gives_the_engines_login_shell_on_a_terminal() {
    let Some(bash) = require_tool("bash", &[], "WARREN_REQUIRE_BASH") else {
        return;
    };
    let mut cluster = Cluster::hub();
    let home = cluster.dir().join("home");
    std::fs::create_dir(&home).expect("home");
    let spill = cluster.dir().join("spill");
    let locate = [
        std::ffi::OsStr::new("--connection-file"),
        cluster.connection_file.as_os_str(),
    ];
    let mut engine = cluster.engine_command(&locate, &spill);
    engine.env("SHELL", &bash).env("HOME", &home);
    cluster.push_engine("warren-engine", engine);
    cluster.wait_for_engines(1).await;

    let mut command = cluster.cli_command();
    command.args(["shell", "1"]);
    let mut term = Terminal::spawn(command, 24, 80);
    // A shell may drop what was typed before it was ready: wait for its prompt.
    let prompt = eventually(PATIENCE, || {
        let screen = term.screen();
        async move {
            let end = screen.trim_end_matches(' ');
            if end.ends_with('#') || end.ends_with('$') {
                Ok(())
            } else {
                Err(screen)
            }
        }
    })
    .await;
    assert!(prompt.is_ok(), "no prompt: {prompt:?}");
    let mark = term.mark();
    term.type_in(b"shopt -q login_shell && echo login=yes; echo shell=$0 answer=$((6*7))\r");
    let shown = term.wait_for(mark, "answer=42").await;
    assert!(shown.contains("login=yes\r\nshell=/"), "{shown:?}");
    assert!(shown.contains("bash answer"), "{shown:?}");
    term.type_in(b"exit 3\r");
    assert_eq!(term.wait_for_exit().await.code(), Some(3));
}

#[tokio::test]
async fn a_terminal_is_refused_for_several_tasks_and_for_detached_ones() {
    let cluster = Cluster::with_engines(2).await;
    let (status, _, stderr) = cluster.cli(&["exec", "-t", "--all", "--", "true"]);
    assert_eq!(status, 64, "{stderr}");
    let (status, _, stderr) = cluster.cli(&["exec", "-t", "-e", "1", "-e", "2", "--", "true"]);
    assert_eq!(status, 64, "{stderr}");
    assert!(stderr.contains("one --engine"), "{stderr}");
    let (status, _, stderr) = cluster.cli(&["exec", "-t", "--detach", "--", "true"]);
    assert_eq!(status, 64, "{stderr}");
    // -t is no longer --timeout.
    let (status, _, stderr) = cluster.cli(&["exec", "-t", "5", "--", "true"]);
    assert_ne!(status, 124, "{stderr}");
}
