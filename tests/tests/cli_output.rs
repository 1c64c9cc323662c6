//! What the CLI shows people: tables that line up, times as times, retries, and a hub log that
//! tells a requested engine stop from a lost engine.

use rustix::process::Signal;
use warren_tests::*;

/// The cells of a line, as (start, end) character positions: runs of characters broken only
/// by single spaces (`3m ago`); columns are at least two spaces apart.
fn words(line: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = line.chars().chain([' ', ' ']).collect();
    let mut words = Vec::new();
    let mut start = None;
    for i in 0..chars.len() - 1 {
        let gap = chars[i] == ' ' && (chars[i + 1] == ' ' || start.is_none());
        match (gap, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    words
}

/// Asserts that every cell starts or ends where its column's header does (left or right
/// aligned).
fn assert_aligned(table: &str) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    let columns = words(header);
    let (last, others) = columns.split_last().expect("columns");
    for line in lines {
        let cells = words(line);
        for (i, (start, end)) in others.iter().enumerate() {
            let (cell_start, cell_end) = cells[i];
            assert!(
                cell_start == *start || cell_end == *end,
                "column {i} of {line:?} is out of line with {header:?}:\n{table}"
            );
        }
        // The last column may hold spaces (COMMAND) or nothing (LABELS, often).
        if let Some((start, _)) = cells.get(others.len()) {
            assert!(
                *start == last.0 || line.chars().count() == last.1,
                "last column of {line:?}:\n{table}"
            );
        }
    }
}

#[tokio::test]
async fn tables_line_up_for_any_content_and_times_read_as_times() {
    let cluster = Cluster::with_engines(1).await;
    let gate = cluster.dir().join("gate");
    let (status, _, _) = cluster.cli(&["sh", "kill -USR1 $$"]);
    assert_eq!(status, 128 + 10);
    let (_, held, _) = cluster.cli(&["sh", "--detach", &wait_for_gate(&gate)]);
    let (_, queued, _) = cluster.cli(&["exec", "--detach", "--", "true"]);
    let queued = queued.trim().to_owned();

    let (status, table, _) = cluster.cli(&["tasks"]);
    assert_eq!(status, 0);
    assert!(table.contains("SIGUSR1"), "{table}");
    assert_aligned(&table);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(queued.as_str()))
        .unwrap_or_else(|| panic!("no row for {queued}:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[1..3],
        ["queued", "-"],
        "a queued task has no engine:\n{table}"
    );
    assert!(
        row.contains("s ago") || row.contains("just now"),
        "the age it was submitted at, as an age:\n{table}"
    );
    let (_, result, _) = cluster.cli(&["result", &queued]);
    assert!(result.contains("engine     -"), "{result}");

    for command in ["engines", "queue"] {
        let (status, text, _) = cluster.cli(&[command]);
        assert_eq!(status, 0);
        let table: String = text
            .lines()
            .skip_while(|l| !l.contains("ENGINE") && !l.contains("HOST"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_aligned(&table);
    }

    std::fs::write(&gate, "").expect("open the gate");
    let (status, _, _) = cluster.cli(&["attach", held.trim()]);
    assert_eq!(status, 0);
    let (_, record, _) = cluster.cli(&["result", held.trim()]);
    let field = |name: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name}:\n{record}"))
            .to_owned()
    };
    for name in ["submitted", "started", "ended"] {
        let time = field(name);
        // 2026-11-30T19:30:01.123+01:00: a local ISO 8601 time with its offset.
        assert_eq!(time.len(), 29, "{name}: {time}");
        assert_eq!(
            (&time[4..5], &time[10..11], &time[19..20]),
            ("-", "T", "."),
            "{time}"
        );
    }
    let ran = field("ran for");
    assert!(
        [" s", " ms", " µs", " min"]
            .iter()
            .any(|unit| ran.ends_with(unit)),
        "{ran}"
    );

    let (status, version, _) = cluster.cli(&["version"]);
    assert_eq!(status, 0);
    let clock = version
        .lines()
        .find_map(|l| l.strip_prefix("hub clock"))
        .expect("a clock line")
        .trim();
    assert_eq!((&clock[4..5], &clock[10..11]), ("-", "T"), "{version}");
    assert!(clock.contains("clock agrees"), "{version}");
}

#[tokio::test]
async fn a_retried_task_says_so_on_stderr_and_its_result_marks_the_attempts() {
    let flags = ["--engine-timeout-ms", "1000", "--heartbeat-ms", "100"];
    let cluster = Cluster::hub_with_engines(&flags, 2).await;
    let gate = cluster.dir().join("gate");
    // The first attempt holds until its engine is killed; the second finds the gate open.
    let script = format!(
        "echo \"pid $WARREN_ENGINE_PID\"; [ -e '{gate}' ] || sleep 60; echo done",
        gate = gate.display()
    );
    let out = cluster.dir().join("warren.out");
    let mut command = cluster.cli_command();
    command.args(["sh", "--retries", "1", &script]);
    let mut warren = Proc::spawn_with_stdout(
        "warren sh",
        command,
        out.clone(),
        cluster.dir().join("warren.err"),
    );
    let pid: u32 = eventually(PATIENCE, || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        async move {
            text.strip_prefix("pid ")
                .and_then(|rest| rest.trim().parse().ok())
                .ok_or(text)
        }
    })
    .await
    .expect("the first attempt starts");
    std::fs::write(&gate, "").expect("open the gate");
    let engines = cluster.client().await.engines().await.expect("engines");
    let lost = engines
        .iter()
        .find(|e| e.pid == pid)
        .expect("its engine")
        .id;
    let other = engines
        .iter()
        .find(|e| e.pid != pid)
        .expect("another engine")
        .id;
    let index = cluster
        .engines
        .iter()
        .position(|e| e.pid() == pid)
        .expect("a test engine");
    cluster.engines[index].signal(Signal::KILL);

    let status = warren
        .wait_for_exit(PATIENCE)
        .await
        .expect("warren sh ends");
    let said = warren.output();
    assert_eq!(status.code(), Some(0), "{said}");
    let note = said
        .lines()
        .find(|l| l.starts_with("[warren] task "))
        .unwrap_or_else(|| panic!("no retry note:\n{said}"));
    let id = note.split_whitespace().nth(2).expect("the task id");
    let (status, record, _) = cluster.cli(&["result", id]);
    assert_eq!(status, 0, "{record}");
    assert!(
        note.contains(&format!("attempt 1 lost on engine {lost} ("))
            && note.ends_with(&format!("); attempt 2 on engine {other}")),
        "{note}\n{record}\n{said}"
    );
    assert!(record.contains("succeeded on attempt 2"), "{record}");
    assert!(record.contains("*2"), "{record}");
}

#[tokio::test]
async fn a_requested_engine_stop_is_logged_as_such_not_as_a_loss() {
    let cluster = Cluster::with_engines(1).await;
    let (status, stdout, _) = cluster.cli(&["engines", "stop"]);
    assert_eq!((status, stdout.as_str()), (0, "engine 1: told to stop\n"));
    let hub = cluster.hub.as_ref().expect("hub");
    let logged = eventually(PATIENCE, || {
        let log = hub.output();
        async move {
            if log.contains("engine stopped, as it was asked to") {
                Ok(log)
            } else {
                Err(log)
            }
        }
    })
    .await
    .unwrap_or_else(|log| panic!("no stop in the hub's log:\n{log}"));
    let line = logged
        .lines()
        .find(|l| l.contains("engine stopped, as it was asked to"))
        .expect("the line");
    assert!(line.contains("INFO"), "{line}");
    assert!(!logged.contains("engine left"), "{logged}");
    assert!(!logged.contains("WARN"), "{logged}");
}
