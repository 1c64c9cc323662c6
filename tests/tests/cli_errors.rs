//! The CLI when things go wrong: a command that can't start, errors said once, several ids of
//! which some are unknown.

use warren::Exit;
use warren::proto::TaskState;
use warren_tests::*;

/// Asserts that `stderr` is one line that says `needle`, with no tonic `code: ..., message:`
/// copy and no cause repeated.
fn one_line(stderr: &str, needle: &str) {
    assert_eq!(stderr.lines().count(), 1, "more than one line:\n{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    for copy in ["code: '", "message: \"", "source:"] {
        assert!(!stderr.contains(copy), "a tonic copy: {stderr}");
    }
    assert!(stderr.matches("os error").count() <= 1, "{stderr}");
}

#[tokio::test]
async fn a_command_that_cannot_start_exits_127_or_126_as_a_shell_does() {
    let cluster = Cluster::with_engines(1).await;
    for (args, code, reason) in [
        (&["exec", "--", "/no/such/program"][..], 127, "no such file"),
        (&["exec", "--", "/etc/passwd"][..], 126, "permission denied"),
        (
            &["exec", "--cwd", "/no/such/dir", "--", "true"][..],
            126,
            "working directory",
        ),
    ] {
        let (status, stdout, stderr) = cluster.cli(args);
        assert_eq!(status, code, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        one_line(&stderr, reason);
    }
}

#[tokio::test]
async fn hub_errors_and_a_stale_connection_file_are_said_once() {
    let mut cluster = Cluster::with_engines(1).await;
    let (status, _, stderr) = cluster.cli(&["attach", "424242"]);
    assert_eq!(status, 255);
    one_line(&stderr, "task 424242 does not exist");

    // A hub killed outright leaves its connection file: nobody answers on the socket.
    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(rustix::process::Signal::KILL);
    assert!(hub.wait_for_exit(PATIENCE).await.is_some());
    let (status, _, stderr) = cluster.cli(&["engines"]);
    assert_eq!(status, 255);
    one_line(&stderr, "no hub answers at");
    assert!(
        stderr.contains("warren cluster start"),
        "the hint applies: {stderr}"
    );
}

#[tokio::test]
async fn several_ids_act_on_every_known_task_and_report_each_unknown_one() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let script = "trap 'echo got INT; exit 9' INT; echo ready; sleep 60 & wait";
    let (status, stdout, _) = cluster.cli(&["sh", "--detach", script]);
    assert_eq!(status, 0);
    let id: u64 = stdout.trim().parse().expect("a task id");
    let mut events = client.follow(id, 0).await.expect("follow");
    loop {
        let event = next_event(&mut events, PATIENCE).await.expect("event");
        if stdout_text(std::slice::from_ref(&event), id).contains("ready") {
            break;
        }
    }

    let (status, stdout, stderr) = cluster.cli(&["interrupt", &id.to_string(), "99999"]);
    assert_eq!(status, 1, "one id was unknown: {stderr}");
    assert_eq!(stdout, format!("task {id}: sent SIGINT\n"));
    assert!(stderr.contains("no task 99999"), "{stderr}");
    let rest = collect(events).await;
    let result = only_result(&rest);
    assert_eq!(
        result.exit,
        Some(Exit::Code(9)),
        "the known one was signalled"
    );
    assert!(stdout_text(&rest, id).contains("got INT"));

    // On a task that has ended, interrupt and abort agree: nothing to do, not a failure.
    for command in ["interrupt", "abort"] {
        let (status, _, stderr) = cluster.cli(&[command, &id.to_string()]);
        assert_eq!(status, 0, "{command}: {stderr}");
        assert!(stderr.contains("already ended"), "{command}: {stderr}");
    }
    let (status, _, stderr) = cluster.cli(&["abort", "99999", &id.to_string()]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("no task 99999"), "{stderr}");
    assert_eq!(
        client.task(id).await.expect("task").state(),
        TaskState::Failed
    );
}
