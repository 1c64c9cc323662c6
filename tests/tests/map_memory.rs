//! A long map stays small: with `-j 16`, the hub never holds more than a few dozen of its
//! tasks in memory, and neither the hub nor the client grows with the number of tasks. (The
//! bench runs 10,000 tasks and reports both processes' memory; here, 2,000 keep CI quick.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use warren_tests::*;

const TASKS: usize = 2_000;
const JOBS: u64 = 16;
/// What this map's tasks may make the hub hold at once: those in flight, and those ended
/// whose stream is still closing.
const HUB_TASKS_BOUND: u64 = 3 * JOBS;
/// Peaks seen in a debug build: hub ~20 MiB, client ~12 MiB.
const HUB_RSS_BOUND: u64 = 64 << 20;
const CLIENT_RSS_BOUND: u64 = 32 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_map_keeps_the_hub_and_the_client_small() {
    let mut cluster = Cluster::hub();
    for _ in 0..2 {
        cluster.add_engine(&["--slots", "4"]);
    }
    cluster.wait_for_engines(2).await;
    let client = cluster.client().await;
    let args = cluster.dir().join("args");
    let lines: String = (1..=TASKS).map(|n| format!("{n}\n")).collect();
    std::fs::write(&args, lines).expect("args");

    let mut command = cluster.cli_command();
    command
        .args(["map", "-j", &JOBS.to_string(), "--args"])
        .arg(&args)
        .args(["--", "true"]);
    let mut map = Proc::spawn("warren map", command, cluster.dir().join("map.log"));
    let map_pid = map.pid();
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let (client_peak, held_peak) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (client_peak, held_peak, client) =
            (client_peak.clone(), held_peak.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                client_peak.fetch_max(rss(map_pid), Ordering::Relaxed);
                if let Ok(queue) = client.queue_status().await {
                    held_peak.fetch_max(u64::from(queue.tasks_in_memory), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let status = map.wait_for_exit(Duration::from_secs(300)).await;
    sampler.abort();
    let status = status.expect("the map ends within 5 minutes");
    assert!(status.success(), "{status}: {}", map.output());

    let (client_rss, held, hub) = (
        client_peak.load(Ordering::Relaxed),
        held_peak.load(Ordering::Relaxed),
        peak_rss(hub_pid),
    );
    eprintln!(
        "{TASKS} tasks, -j {JOBS}: hub held at most {held} tasks; peak RSS hub {}, client {}",
        mib(hub),
        mib(client_rss)
    );
    assert!(
        held > 0 && held <= HUB_TASKS_BOUND,
        "the hub held {held} tasks at once"
    );
    assert!(
        client_rss > 0 && client_rss < CLIENT_RSS_BOUND,
        "client peak RSS {}",
        mib(client_rss)
    );
    assert!(hub > 0 && hub < HUB_RSS_BOUND, "hub peak RSS {}", mib(hub));
    let left = eventually(PATIENCE, || async {
        match client.queue_status().await.map(|q| q.tasks_in_memory) {
            Ok(0) => Ok(()),
            other => Err(other.ok()),
        }
    })
    .await;
    assert!(left.is_ok(), "every task leaves memory: {left:?}");
}
