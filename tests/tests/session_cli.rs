//! `warren session` and `warren px` against a real cluster: per-engine prefixes, `Out[engine
//! N]`, tracebacks on stderr, exit statuses, a file or stdin as one cell, and the prompt of
//! `px -i`, where Ctrl-C interrupts the running cell and not the prompt.

use std::io::{BufReader, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};
use warren_tests::*;

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn px_runs_a_cell_on_every_engine_of_a_group() {
    let cluster = Cluster::with_engines(2).await;
    let (status, stdout, stderr) = cluster.cli(&["session", "open", "--all", "--name", "g"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.starts_with("group g\n"), "{stdout}");
    assert!(
        stdout.contains("session 1 on engine 1: Python 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("session 2 on engine 2: Python 3"),
        "{stdout}"
    );
    let (_, listed, _) = cluster.cli(&["session", "ls"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains(" idle ")).count(),
        2,
        "{listed}"
    );

    // The only group is the default.
    let (status, _, stderr) = cluster.cli(&["px", "x = 2"]);
    assert_eq!(status, 0, "{stderr}");
    let (status, stdout, stderr) = cluster.cli(&["px", "--name", "g", "print('hi')\nx * 21"]);
    assert_eq!(status, 0, "{stderr}");
    for engine in [1, 2] {
        assert!(
            stdout.contains(&format!("[engine {engine}] hi\n")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("Out[engine {engine}]: 42\n")),
            "{stdout}"
        );
    }
    let (status, stdout, stderr) = cluster.cli(&["px", "1/0"]);
    assert_eq!(status, 1);
    assert!(stdout.is_empty(), "{stdout}");
    for engine in [1, 2] {
        assert!(
            stderr.contains(&format!(
                "[engine {engine}] ZeroDivisionError: division by zero\n"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("[engine {engine}] Traceback")),
            "{stderr}"
        );
    }

    // One session: no prefixes on its output.
    let (status, stdout, _) = cluster.cli(&["px", "--session", "2", "print('one')\nx"]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "one\nOut[engine 2]: 2\n");

    // A file, and stdin, as one cell.
    let file = cluster.dir().join("cell.py");
    std::fs::write(&file, "def f(n):\n    return n + x\n\nf(40)\n").expect("write");
    let (status, stdout, _) = cluster.cli(&["px", "-s", "1", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "Out[engine 1]: 42\n");
    let mut command = cluster.cli_command();
    let mut child = command
        .args(["px", "-s", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("warren px");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"for i in range(3):\n    print(i)\nf(1)\n")
        .expect("write");
    let output = child.wait_with_output().expect("px");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "0\n1\n2\nOut[engine 1]: 3\n"
    );

    let (status, stdout, stderr) = cluster.cli(&["session", "restart", "1"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.starts_with("session 1 on engine 1: Python 3"),
        "{stdout}"
    );
    let (status, _, stderr) = cluster.cli(&["px", "-s", "1", "x"]);
    assert_eq!(status, 1);
    assert!(stderr.contains("NameError"), "{stderr}");

    let (status, stdout, stderr) = cluster.cli(&["session", "close", "g"]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "session 1: closed\nsession 2: closed\n");
    let (status, _, stderr) = cluster.cli(&["px", "1"]);
    assert_ne!(status, 0);
    assert!(stderr.contains("no sessions are open"), "{stderr}");
}

/// Reads lines from `reader` until one contains `text` (bounded by [`PATIENCE`]).
fn read_until(reader: &mut impl std::io::BufRead, text: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains(text) {
            return seen;
        }
    }
    panic!("never saw {text:?}; saw {seen:?}");
}

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn px_prompt_runs_entries_and_ctrl_c_interrupts_the_cell_not_the_prompt() {
    let cluster = Cluster::with_engines(1).await;
    let (status, _, stderr) = cluster.cli(&["session", "open", "--name", "p"]);
    assert_eq!(status, 0, "{stderr}");
    let stderr_file = cluster.dir().join("px-stderr");
    let mut px = cluster
        .cli_command()
        .args(["px", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("warren px -i");
    let pid = px.id();
    let mut stdin = px.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(px.stdout.take().expect("stdout"));
    stdin
        .write_all(b"x = 5\nfor i in range(2):\n    print('row', i)\n\nx\n")
        .expect("write");
    let seen = read_until(&mut stdout, "Out[engine 1]: 5");
    assert!(seen.contains("row 0\nrow 1\n"), "{seen}");

    stdin
        .write_all(b"import time\nprint('sleeping', flush=True); time.sleep(600)\n")
        .expect("write");
    read_until(&mut stdout, "sleeping");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::INT,
    )
    .expect("SIGINT");
    stdin.write_all(b"x + 1\n").expect("write");
    read_until(&mut stdout, "Out[engine 1]: 6");
    drop(stdin);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = px.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "px -i did not end at end of input"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let stderr = std::fs::read_to_string(&stderr_file).expect("stderr");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
}
