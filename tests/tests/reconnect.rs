//! A following `warren sh` rides over a hub restart: it reconnects, resumes each task from the
//! next event, and ends with the task's status; if the hub does not come back, it says how to
//! pick the task up.

use rustix::process::Signal;
use sha2::{Digest, Sha256};
use std::path::Path;
use warren_tests::*;

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// SIGKILLs the hub and waits until it is gone.
async fn kill_hub(cluster: &mut Cluster) {
    let mut hub = cluster.hub.take().expect("hub");
    hub.signal(Signal::KILL);
    assert!(
        hub.wait_for_exit(PATIENCE).await.is_some(),
        "the hub outlived SIGKILL"
    );
}

/// Waits until `process`'s stderr says `needle`; returns all of it.
async fn wait_for_log(process: &Proc, needle: &str) -> String {
    eventually(PATIENCE, || {
        let text = process.output();
        async move {
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await
    .unwrap_or_else(|text| panic!("never said {needle:?}:\n{text}"))
}

#[tokio::test]
async fn a_following_sh_rides_over_a_hub_restart_with_every_byte_once_and_the_tasks_status() {
    let mut cluster = Cluster::with_engines(1).await;
    let copy = cluster.dir().join("written");
    let out = cluster.dir().join("warren.out");
    // 800 kB of random bytes in 40 pieces, a copy of exactly what was written, then status 3.
    let script = format!(
        "i=0; while [ $i -lt 40 ]; do head -c 20000 /dev/urandom; sleep 0.05; i=$((i+1)); done | tee {}; exit 3",
        copy.display()
    );
    let mut command = cluster.cli_command();
    command.args(["sh", &script]);
    let mut warren = Proc::spawn_with_stdout(
        "warren sh",
        command,
        out.clone(),
        cluster.dir().join("warren.err"),
    );
    let started = eventually(PATIENCE, || {
        let n = size(&out);
        async move { if n >= 100_000 { Ok(()) } else { Err(n) } }
    })
    .await;
    assert!(started.is_ok(), "no output before the kill: {started:?}");

    kill_hub(&mut cluster).await;
    wait_for_log(&warren, "reconnecting").await;
    // A new hub on the same socket and history, with a new key: the client must read it.
    cluster.start_hub(&[]);

    let status = warren
        .wait_for_exit(PATIENCE)
        .await
        .expect("warren sh ends once the task has");
    let said = warren.output();
    assert_eq!(status.code(), Some(3), "the task's own status:\n{said}");
    assert!(said.contains("[warren] reconnected"), "{said}");
    let written = std::fs::read(&copy).expect("the task's copy");
    let shown = std::fs::read(&out).expect("warren's stdout");
    assert_eq!(written.len(), 800_000);
    assert_eq!(
        shown.len(),
        written.len(),
        "nothing lost, nothing twice:\n{said}"
    );
    assert_eq!(digest(&shown), digest(&written));
}

#[tokio::test]
async fn a_follower_whose_hub_does_not_return_exits_255_with_the_attach_line() {
    let mut cluster = Cluster::with_engines(1).await;
    let gate = cluster.dir().join("gate");
    let out = cluster.dir().join("warren.out");
    let script = format!("echo before; {}; echo after", wait_for_gate(&gate));
    let mut command = cluster.cli_command();
    command.args(["sh", "--reconnect-timeout", "1", &script]);
    let mut warren = Proc::spawn_with_stdout(
        "warren sh",
        command,
        out.clone(),
        cluster.dir().join("warren.err"),
    );
    let before = eventually(PATIENCE, || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        async move {
            if text == "before\n" {
                Ok(())
            } else {
                Err(text)
            }
        }
    })
    .await;
    assert!(before.is_ok(), "{before:?}");

    kill_hub(&mut cluster).await;
    let status = warren
        .wait_for_exit(PATIENCE)
        .await
        .expect("warren sh gives up after --reconnect-timeout");
    let said = warren.output();
    assert_eq!(status.code(), Some(255), "{said}");
    // `warren --connection-file F attach ID --from SEQ`: the same hub flags, then the task.
    let line = said
        .lines()
        .find(|l| l.contains(" attach "))
        .unwrap_or_else(|| panic!("no attach line:\n{said}"));
    let command = line.split("follow it with: ").nth(1).expect("the command");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(
        &words[..3],
        [
            "warren",
            "--connection-file",
            cluster.connection_file.to_str().expect("utf-8")
        ]
    );
    assert_eq!((words[3], words[5]), ("attach", "--from"), "{line}");

    // The line works: with the hub back, the rest of the output, and the status.
    cluster.start_hub(&[]);
    std::fs::write(&gate, "").expect("open the gate");
    let (status, stdout, stderr) = cluster.cli(&words[3..]);
    assert_eq!((status, stdout.as_str()), (0, "after\n"), "{stderr}");
}
