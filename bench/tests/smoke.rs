//! The bench's smoke run in `cargo test`: `warren-bench --smoke` runs every scenario once at
//! tiny sizes against the hub and engines built beside it, and this checks that each one ran
//! and wrote its JSON, that the charts and the IPython parallel comparison were written, and
//! that no task was lost. It asserts no timing: figures taken here mean nothing.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every scenario's key in the results. A new scenario adds its key here.
const SCENARIOS: [&str; 19] = [
    "baselines",
    "baseline_tonic_unary_unsigned",
    "roundtrip_true",
    "throughput_true",
    "fan_in",
    "map_true",
    "stream",
    "session_roundtrip_pass",
    "session_cells_pipelined",
    "interactive",
    "copy",
    "fanout_64",
    "hmac_layer",
    "scale",
    "load",
    "growth",
    "sessions_memory",
    "cluster_start_2",
    "liveness",
];

/// Far longer than a smoke run takes (under a minute), so only a hang trips it.
const PATIENCE: Duration = Duration::from_secs(900);

/// Runs `warren-bench` with these arguments in its own process group, killing the group (the
/// bench and every hub, engine and client it started) if it hangs.
fn run_bench(args: &[&std::ffi::OsStr]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let bench = Path::new(env!("CARGO_BIN_EXE_warren-bench"));
    let dir = bench.parent().expect("the bench's directory");
    for name in ["warren-hub", "warren-engine", "warren"] {
        assert!(
            dir.join(name).is_file(),
            "{name} is not built beside warren-bench in {}: run `cargo build --workspace` first \
             (`cargo test --workspace` does)",
            dir.display()
        );
    }
    let child = Command::new(bench)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start warren-bench");
    let group = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + PATIENCE;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // The group is the bench's own, made above: nothing else is in it.
            if let Some(group) = rustix::process::Pid::from_raw(group as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            panic!("warren-bench --smoke still ran after {PATIENCE:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    waiter
        .join()
        .expect("the waiting thread")
        .expect("warren-bench's output")
}

/// Where in `value` a figure is missing (JSON null, which is what NaN becomes) or negative.
fn insane(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(format!("{path} is null")),
        Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => {
            found.push(format!("{path} is negative: {n}"))
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                insane(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                insane(field, &format!("{path}.{name}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn every_scenario_runs_and_writes_its_json() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let json = scratch.path().join("results.json");
    let charts = scratch.path().join("charts");
    let markdown = scratch.path().join("table.md");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ipyparallel-sample.json");
    let started = Instant::now();
    let output = run_bench(&[
        "--smoke".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
        "--charts".as_ref(),
        charts.as_os_str(),
        "--compare".as_ref(),
        sample.as_os_str(),
        "--markdown".as_ref(),
        markdown.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "warren-bench --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!(
        "warren-bench --smoke took {:?}:\n{stdout}",
        started.elapsed()
    );

    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the results file"))
            .expect("the results are JSON");
    assert_eq!(document["smoke"], Value::Bool(true), "{document}");
    let results = &document["results"];
    for name in SCENARIOS {
        let figures = results[name].as_object();
        assert!(
            figures.is_some_and(|f| !f.is_empty()),
            "scenario {name} wrote no results:\n{stdout}"
        );
    }
    let mut found = Vec::new();
    insane(results, "results", &mut found);
    assert!(found.is_empty(), "figures that make no sense: {found:?}");

    // Every task of the load scenario is accounted for, and every follower saw its task end.
    let load = &results["load"];
    assert_eq!(
        load["submit_and_follow"]["all_accounted"],
        Value::Bool(true),
        "{load}"
    );
    let followers = &load["followers"];
    assert_eq!(followers["errors"], 0, "{followers}");
    let ended = followers["fast"]["ended"].as_u64().unwrap_or(0)
        + followers["slow"]["ended"].as_u64().unwrap_or(0);
    assert_eq!(Some(ended), followers["followers"].as_u64(), "{followers}");

    // Each series of scenario 10 has its points, and its chart.
    let growth = &results["growth"];
    for (series, points) in [
        ("engines", &growth["engines"]),
        ("history", &growth["history"]["points"]),
        ("clients", &growth["clients"]),
    ] {
        let points = points.as_array().map_or(0, Vec::len);
        assert!(points >= 2, "growth by {series} has {points} points");
        let svg = std::fs::read_to_string(charts.join(format!("growth-{series}.svg")))
            .unwrap_or_else(|e| panic!("the {series} chart: {e}"));
        assert!(svg.contains("<svg"), "the {series} chart is not SVG");
    }

    // The comparison with IPython parallel made rows of the table.
    let pairs = document["compare"]["results"]["pairs"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(pairs >= 4, "{}", document["compare"]);
    assert!(stdout.contains("vs IPython parallel: round trip p50"));

    // The Markdown table has a row for each row of the JSON table, the comparison's too.
    let rows = document["table"].as_array().map_or(0, Vec::len);
    let table = std::fs::read_to_string(&markdown).expect("the Markdown table");
    assert!(table.starts_with("| scenario | warren |"), "{table}");
    assert_eq!(table.lines().count(), rows + 2, "{table}");
    assert!(table.contains("| 1 round trip of `true` |"), "{table}");
}
