//! `warren map` on a real hub: each input form, the joblog's columns, the results directory,
//! output grouped per task, the exit status, and Ctrl-C.

use rustix::process::Signal;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use warren::proto::{ListTasksRequest, TaskState};
use warren_tests::*;

/// Runs `warren map ARGS` with `stdin` as its input; returns (status, stdout, stderr).
fn map_with_stdin(cluster: &Cluster, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = cluster
        .cli_command()
        .arg("map")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run warren map");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the arguments");
    let output = child.wait_with_output().expect("warren map");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_owned).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn arguments_come_from_triple_colon_a_file_or_stdin() {
    let cluster = Cluster::with_engines(2).await;
    let (status, stdout, stderr) =
        cluster.cli(&["map", "--", "echo", "got", "{}", ":::", "a", "b c", "d"]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(lines(&stdout), set(&["got a", "got b c", "got d"]));

    let file = cluster.dir().join("args");
    std::fs::write(&file, "in/x.tar\nin/y.gz\n").expect("args file");
    let (status, stdout, stderr) = cluster.cli(&[
        "map",
        "--args",
        file.to_str().expect("path"),
        "--",
        "echo",
        "{#}",
        "{/.}",
        "{//}",
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(lines(&stdout), set(&["1 x in", "2 y in"]));

    // Without `{}`, the argument goes last; lines from stdin.
    let (status, stdout, stderr) = map_with_stdin(&cluster, &["--", "echo", "line"], "one\ntwo\n");
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(lines(&stdout), set(&["line one", "line two"]));

    let (status, _, stderr) = cluster.cli(&[
        "map",
        "--args",
        file.to_str().expect("path"),
        "--",
        "echo",
        ":::",
        "a",
    ]);
    assert_eq!(status, 64, "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
}

#[tokio::test]
async fn the_joblog_has_a_line_per_task_in_parallels_columns_and_failures_count() {
    let cluster = Cluster::with_engines(2).await;
    let joblog = cluster.dir().join("joblog");
    let (status, stdout, stderr) = cluster.cli(&[
        "map",
        "--joblog",
        joblog.to_str().expect("path"),
        "--label",
        "batch=joblog",
        "--",
        "sh",
        "-c",
        "echo out-$1; exit $1",
        "_",
        ":::",
        "0",
        "3",
        "0",
        "5",
    ]);
    assert_eq!(status, 2, "two tasks failed: {stderr}");
    assert_eq!(lines(&stdout), set(&["out-0", "out-3", "out-5"]));

    let text = std::fs::read_to_string(&joblog).expect("joblog");
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let client = cluster.client().await;
    let tasks = client
        .tasks_page(ListTasksRequest {
            labels: [("batch".to_owned(), "joblog".to_owned())].into(),
            ..Default::default()
        })
        .await
        .expect("tasks")
        .tasks;
    for row in &rows {
        assert_eq!(row.len(), 9, "{row:?}");
        let task: u64 = row[0].parse().expect("Seq is the task id");
        let info = tasks
            .iter()
            .find(|t| t.id == task)
            .expect("a task of the map");
        assert_eq!(row[1], info.engine_id.to_string());
        let start: f64 = row[2].parse().expect("Starttime");
        let started = info.result.as_ref().expect("ended").started_us as f64 / 1e6;
        assert!((start - started).abs() < 0.002, "{start} vs {started}");
        assert!(row[3].trim().parse::<f64>().expect("JobRuntime") >= 0.0);
        assert_eq!(row[4], "0");
        let exit = row[8]
            .split(' ')
            .next_back()
            .expect("the argument in the command");
        assert_eq!(row[6], exit, "Exitval: {row:?}");
        assert_eq!(row[5], "6", "Receive: `out-N\\n` is 6 bytes");
        assert_eq!(row[7], "0");
        assert!(
            row[8].starts_with("sh -c 'echo out-$1; exit $1' _ "),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn results_go_to_a_directory_and_output_is_grouped_per_task() {
    let cluster = Cluster::with_engines(2).await;
    let results = cluster.dir().join("results");
    let (status, stdout, stderr) = cluster.cli(&[
        "map",
        "--results",
        results.to_str().expect("path"),
        "--",
        "sh",
        "-c",
        "echo $1-out; echo $1-err >&2",
        "_",
        ":::",
        "x",
        "y",
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "", "with --results nothing is shown");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&results).expect("results dir") {
        let dir = entry.expect("entry").path();
        let arg = std::fs::read_to_string(dir.join("arg")).expect("arg");
        let out = std::fs::read_to_string(dir.join("stdout")).expect("stdout");
        let err = std::fs::read_to_string(dir.join("stderr")).expect("stderr");
        assert_eq!((out, err), (format!("{arg}-out\n"), format!("{arg}-err\n")));
        let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
        name.parse::<u64>().expect("named by task id");
        seen.insert(arg);
    }
    assert_eq!(seen, set(&["x", "y"]));

    // Each task writes three lines with pauses between; shown whole, they are never mixed.
    let (status, stdout, stderr) = cluster.cli(&[
        "map",
        "-j",
        "4",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $1-$i; sleep 0.1; done",
        "_",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert_eq!(status, 0, "{stderr}");
    let all: Vec<&str> = stdout.lines().collect();
    assert_eq!(all.len(), 12, "{stdout}");
    for group in all.chunks(3) {
        let arg = group[0].split('-').next().expect("arg");
        assert_eq!(
            group,
            [format!("{arg}-1"), format!("{arg}-2"), format!("{arg}-3")],
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn the_exit_status_is_the_number_of_failures_up_to_101() {
    let cluster = Cluster::hub_with_engines(&[], 2).await;
    let mut args = vec!["map", "-j", "16", "--", "false", ":::"];
    let numbers: Vec<String> = (0..102).map(|n| n.to_string()).collect();
    args.extend(numbers.iter().map(String::as_str));
    let (status, _, stderr) = cluster.cli(&args);
    assert_eq!(status, 101, "{stderr}");
}

#[tokio::test]
async fn ctrl_c_aborts_what_has_not_started_and_submits_nothing_more() {
    let cluster = Cluster::with_engines(1).await;
    let gate = cluster.dir().join("gate");
    let marks = cluster.dir().join("marks");
    std::fs::create_dir(&marks).expect("marks dir");
    let script = format!("touch '{}'/$1; {}", marks.display(), wait_for_gate(&gate));
    let mut command = cluster.cli_command();
    command.args([
        "map",
        "-j",
        "3",
        "--label",
        "batch=ctrl-c",
        "--",
        "sh",
        "-c",
        &script,
        "_",
        ":::",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]);
    let mut map = Proc::spawn("warren map", command, cluster.dir().join("map.log"));
    // One slot: the first task runs, two more wait in the queue, the rest are not submitted.
    let client = cluster.client().await;
    let filter = ListTasksRequest {
        labels: [("batch".to_owned(), "ctrl-c".to_owned())].into(),
        ..Default::default()
    };
    let running = eventually(PATIENCE, || {
        let (client, filter) = (client.clone(), filter.clone());
        async move {
            let tasks = client.tasks_page(filter).await.map_err(|_| 0usize)?.tasks;
            let running = tasks
                .iter()
                .filter(|t| t.state() == TaskState::Running)
                .count();
            if tasks.len() == 3 && running == 1 {
                Ok(())
            } else {
                Err(tasks.len())
            }
        }
    })
    .await;
    assert!(running.is_ok(), "{running:?}\n{}", map.output());

    map.signal(Signal::INT);
    map.wait_for_output("aborted 2 that had not started").await;
    std::fs::write(&gate, b"").expect("open the gate");
    let status = map.wait_for_exit(PATIENCE).await.expect("map exits");
    assert_eq!(status.code(), Some(130), "{}", map.output());

    let tasks = client.tasks_page(filter).await.expect("tasks").tasks;
    let mut states: Vec<TaskState> = tasks.iter().map(|t| t.state()).collect();
    states.sort_unstable();
    assert_eq!(
        states,
        [TaskState::Succeeded, TaskState::Aborted, TaskState::Aborted],
        "{tasks:#?}"
    );
    let started = std::fs::read_dir(&marks).expect("marks").count();
    assert_eq!(started, 1, "only the running task ever started");
}
