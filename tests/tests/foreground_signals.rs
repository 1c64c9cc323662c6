//! Signals to a foreground `warren exec` go to the task's process group (docker's sig-proxy)
//! and warren exits with the task's status; three Ctrl-C within 2 s detach; a client killed
//! without a word leaves its task running, and `warren tasks` names it; a closed stdout ends
//! the task by SIGPIPE, recorded as such, and warren at once.

use rustix::process::{Pid, Signal};
use warren::proto::{TaskState, task_result};
use warren_tests::*;

fn send(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal warren");
}

/// Waits until warren's stderr says `text` `times` times.
async fn wait_for_stderr(warren: &Piped, text: &str, times: usize) {
    let said = eventually(PATIENCE, || {
        let stderr = warren.stderr();
        async move {
            if stderr.matches(text).count() >= times {
                Ok(())
            } else {
                Err(stderr)
            }
        }
    })
    .await;
    assert!(said.is_ok(), "never said {text:?} {times} times: {said:?}");
}

#[tokio::test]
async fn signals_go_to_the_tasks_group_and_warren_exits_with_its_status() {
    let cluster = Cluster::with_engines(1).await;
    let signals = [
        (Signal::INT, "INT", 41),
        (Signal::TERM, "TERM", 42),
        (Signal::HUP, "HUP", 43),
        (Signal::QUIT, "QUIT", 44),
        (Signal::USR1, "USR1", 45),
        (Signal::USR2, "USR2", 46),
    ];
    for (signal, name, code) in signals {
        let script = format!(
            "ulimit -c 0; trap 'echo got-{name}; exit {code}' {name}; echo up; \
             while :; do sleep 0.05; done"
        );
        let mut command = cluster.cli_command();
        command.args(["sh", &script]);
        let mut warren = Piped::spawn(command);
        assert_eq!(warren.line().as_deref(), Some("up"));
        send(warren.pid(), signal);
        assert_eq!(warren.line(), Some(format!("got-{name}")));
        let status = warren.wait();
        assert_eq!(status.code(), Some(code), "{name}: {}", warren.stderr());
        assert!(
            warren.stderr().contains(&format!("sent SIG{name} to task")),
            "{}",
            warren.stderr()
        );
    }
}

#[tokio::test]
async fn three_ctrl_c_within_two_seconds_detach_and_the_task_goes_on() {
    let cluster = Cluster::with_engines(1).await;
    let gate = cluster.dir().join("gate");
    let script = format!(
        "trap '' INT; echo up; {}; echo through",
        wait_for_gate(&gate)
    );
    let mut command = cluster.cli_command();
    command.args(["sh", &script]);
    let mut warren = Piped::spawn(command);
    assert_eq!(warren.line().as_deref(), Some("up"));
    // One at a time: signals sent together may arrive as one.
    for presses in 1..=2 {
        send(warren.pid(), Signal::INT);
        wait_for_stderr(&warren, "sent SIGINT to task", presses).await;
    }
    send(warren.pid(), Signal::INT);
    let status = warren.wait();
    assert_eq!(status.code(), Some(130), "{}", warren.stderr());
    let task = newest_task(&cluster).await;
    let stderr = warren.stderr();
    assert!(stderr.contains("detached"), "{stderr}");
    assert!(
        stderr.contains(&format!("attach {} --from", task.id)),
        "{stderr}"
    );

    assert_eq!(task.state(), TaskState::Running, "{task:?}");
    std::fs::write(&gate, b"").expect("open the gate");
    let (status, output, _) = cluster.cli(&["attach", &task.id.to_string()]);
    assert_eq!((status, output.as_str()), (0, "up\nthrough\n"));
}

#[tokio::test]
async fn a_client_killed_without_a_word_leaves_its_task_running_and_named() {
    let cluster = Cluster::with_engines(1).await;
    let gate = cluster.dir().join("gate");
    let script = format!("echo up; {}; echo through", wait_for_gate(&gate));
    let mut command = cluster.cli_command();
    command.args(["sh", &script]);
    let mut warren = Piped::spawn(command);
    assert_eq!(warren.line().as_deref(), Some("up"));
    let client_pid = warren.pid();
    send(client_pid, Signal::KILL);
    warren.wait();

    let task = newest_task(&cluster).await;
    assert_eq!(task.submitter_pid, client_pid);
    let (status, table, _) = cluster.cli(&["tasks", "--state", "running"]);
    assert_eq!(status, 0);
    let row = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(task.id.to_string().as_str()))
        .unwrap_or_else(|| panic!("no running task {}:\n{table}", task.id));
    assert!(
        row.split_whitespace()
            .any(|cell| cell == client_pid.to_string()),
        "the row names the client: {table}"
    );
    std::fs::write(&gate, b"").expect("open the gate");
    let (status, output, _) = cluster.cli(&["attach", &task.id.to_string()]);
    assert_eq!((status, output.as_str()), (0, "up\nthrough\n"));
}

#[tokio::test]
async fn a_closed_stdout_ends_the_task_by_sigpipe_and_warren_at_once() {
    let cluster = Cluster::with_engines(1).await;
    let mut command = cluster.cli_command();
    command.args(["sh", "seq 1 100000000"]);
    let mut warren = Piped::spawn(command);
    assert_eq!(warren.line().as_deref(), Some("1"));
    assert_eq!(warren.line().as_deref(), Some("2"));
    warren.close_stdout();
    let status = warren.wait();
    assert_eq!(status.code(), Some(128 + 13), "{}", warren.stderr());

    let client = cluster.client().await;
    let id = newest_task(&cluster).await.id;
    let ended = eventually(PATIENCE, || {
        let client = client.clone();
        async move {
            let info = client.task(id).await.expect("task");
            info.result.clone().map(|result| (info, result)).ok_or(())
        }
    })
    .await;
    let (info, result) = ended.expect("the task ends");
    assert_eq!(
        result.exit,
        Some(task_result::Exit::Signal(Signal::PIPE.as_raw())),
        "{result:?}"
    );
    // Not the ~900 MB `seq` writes in all: it was stopped, not left to run.
    assert!(info.output_bytes < 200 << 20, "{info:?}");
}
