//! The stdin the hub holds for tasks that have not started is bounded (`--max-input-held`,
//! 256 MiB by default): past it, Execute and Submit are refused with RESOURCE_EXHAUSTED, and a
//! flood of large submissions leaves the hub small.

use std::time::Instant;
use tonic::Code;
use warren::Job;
use warren_tests::*;

const MIB: u64 = 1 << 20;
/// The most stdin one task may have.
const STDIN: usize = 8 << 20;
/// The hub's peak RSS after thousands of submissions of 8 MiB each: the 256 MiB budget, the request
/// being read when the budget fills up (up to 16 MiB), and the hub's own ~10-60 MiB.
const HUB_PEAK_BOUND: u64 = 384 * MIB;

/// Submissions made: every one past the 32nd is refused before its body is read, so the peak
/// does not depend on how many there are, but each still carries its 8 MiB through the socket
/// (about 3.5 ms here). 1,000 keep the test at a few seconds; `WARREN_INPUT_FLOOD=10000` runs
/// the 10,000 (about 35 s in a debug build; peak 309 MiB, as with 1,000).
fn attempts() -> usize {
    std::env::var("WARREN_INPUT_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

fn exhausted(err: &warren::Error) -> bool {
    err.status().is_some_and(|s| {
        s.code() == Code::ResourceExhausted && s.message().contains("--max-input-held")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_8_mib_submissions_leaves_the_hub_small() {
    // No engine: every accepted task waits, holding its stdin.
    let cluster = Cluster::hub();
    let client = cluster.client().await;
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let job = Job::argv(["cat"]).stdin(vec![b'x'; STDIN]);

    let started = Instant::now();
    let (mut accepted, mut refused) = (Vec::new(), 0);
    let attempts = attempts();
    for _ in 0..attempts {
        match client.submit(job.clone()).await {
            Ok(ids) => accepted.extend(ids),
            Err(err) if exhausted(&err) => refused += 1,
            Err(err) => panic!("neither accepted nor refused for its stdin: {err}"),
        }
    }
    let elapsed = started.elapsed();
    let peak = peak_rss(hub_pid);
    eprintln!(
        "{attempts} submissions of 8 MiB in {elapsed:?}: {} accepted, {refused} refused; hub peak RSS {}",
        accepted.len(),
        mib(peak)
    );
    assert_eq!(accepted.len(), 32, "256 MiB holds 32 tasks of 8 MiB");
    assert!(peak < HUB_PEAK_BOUND, "hub peak RSS {}", mib(peak));

    // Aborting queued tasks gives their share back.
    client.abort(&accepted[..2]).await.expect("abort");
    client
        .submit(job.clone())
        .await
        .expect("room again for one more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_to_engines_that_never_read_is_bounded_too() {
    // Engines that register and then read nothing (the hub must not write them off meanwhile).
    let cluster = Cluster::hub_with(&["--engine-timeout-ms", "600000"]);
    let client = cluster.client().await;
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let mut stalled = Vec::new();
    for i in 0..48 {
        let hello = warren::proto::Hello {
            uuid: format!("silent-{i}"),
            hostname: "nowhere".into(),
            slots: 1,
            ..Default::default()
        };
        stalled.push(cluster.register_raw(hello).await.expect("register"));
    }
    cluster.wait_for_engines(48).await;
    let stdin = vec![b'y'; STDIN];

    let err = client
        .submit(Job::argv(["cat"]).stdin(stdin.clone()).all())
        .await
        .expect_err("48 copies of 8 MiB are over the budget");
    assert!(exhausted(&err), "{err}");
    // Sixteen fit (128 MiB), then sixteen more (256 MiB), then nothing.
    for _ in 0..2 {
        let ids = client
            .submit(Job::argv(["cat"]).stdin(stdin.clone()).engines(1..=16))
            .await
            .expect("16 tasks of 8 MiB fit");
        assert_eq!(ids.len(), 16);
    }
    let err = client
        .submit(Job::argv(["cat"]).stdin(stdin.clone()).engines([17]))
        .await
        .expect_err("the budget is full");
    assert!(exhausted(&err), "{err}");
    let peak = peak_rss(hub_pid);
    eprintln!(
        "48 engines that never read, 32 tasks of 8 MiB: hub peak RSS {}",
        mib(peak)
    );
    assert!(peak < HUB_PEAK_BOUND * 2, "hub peak RSS {}", mib(peak));
    drop(stalled);
}
