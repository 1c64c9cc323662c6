//! Followers are bounded across client processes: in number (`--max-follow-streams`), and in
//! the memory their replays hold (`--follow-memory`). 1,000 followers from 4 processes that
//! read nothing leave the hub small.

use std::process::Command;
use warren::Job;
use warren_tests::*;

const MIB: u64 = 1 << 20;
/// The hub's peak RSS with 1,000 followers that read nothing, replaying 64 MiB of output
/// (1,040 MiB here before the bounds; 571 MiB in the report).
const HUB_PEAK_BOUND: u64 = 256 * MIB;

fn flood(cluster: &Cluster, task: u64, count: usize, index: usize) -> Proc {
    let mut command = Command::new(binary("follow-flood"));
    command
        .arg(&cluster.connection_file)
        .arg(task.to_string())
        .arg(count.to_string());
    Proc::spawn(
        &format!("follow-flood #{index}"),
        command,
        cluster.dir().join(format!("flood-{index}.log")),
    )
}

/// (opened, refused) once the process has tried every stream.
async fn tally(proc: &Proc) -> (usize, usize) {
    let line = eventually(PATIENCE * 3, || {
        let out = proc.output();
        async move {
            out.lines()
                .find_map(|l| l.strip_prefix("opened ").map(str::to_owned))
                .ok_or(out)
        }
    })
    .await
    .unwrap_or_else(|out| panic!("follow-flood did not finish opening:\n{out}"));
    let mut words = line.split_whitespace();
    let opened = words.next().and_then(|n| n.parse().ok()).expect("opened");
    let refused = words.nth(1).and_then(|n| n.parse().ok()).expect("refused");
    (opened, refused)
}

/// A finished task with 64 MiB of kept output, in 1 MiB events.
async fn big_task(cluster: &Cluster) -> u64 {
    let client = cluster.client().await;
    let events = collect(
        client
            .run(Job::argv(["head", "-c", "67108864", "/dev/zero"]))
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(
        only_result(&events).state,
        warren::proto::TaskState::Succeeded
    );
    events[0].task_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_followers_that_read_nothing_leave_the_hub_small() {
    let mut cluster = Cluster::hub();
    cluster.add_engine(&[]);
    cluster.wait_for_engines(1).await;
    let task = big_task(&cluster).await;
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let before = peak_rss(hub_pid);

    let floods: Vec<Proc> = (0..4).map(|i| flood(&cluster, task, 250, i)).collect();
    let mut opened = 0;
    for proc in &floods {
        opened += tally(proc).await.0;
    }
    assert_eq!(opened, 1000, "every follower fits the default bounds");
    // Give the hub time to push what it will into the stalled streams: the peak is sampled
    // until it has stopped growing for a second.
    let mut last = 0;
    let mut steady = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while steady < 10 && std::time::Instant::now() < deadline {
        let now = peak_rss(hub_pid);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let peak = peak_rss(hub_pid);
    eprintln!(
        "1,000 followers from 4 processes reading nothing: hub peak RSS {} (before them {})",
        mib(peak),
        mib(before)
    );
    drop(floods);
    assert!(peak < HUB_PEAK_BOUND, "hub peak RSS {}", mib(peak));
    // The hub still serves, and a reader still gets the whole task.
    let client = cluster.client().await;
    let events = collect(client.follow(task, 0).await.expect("follow")).await;
    assert_eq!(
        output(&events, task, warren::OutputStream::Stdout).len(),
        64 << 20
    );
}

#[tokio::test]
async fn follow_streams_are_bounded_across_processes() {
    let cluster = Cluster::hub_with_engines(&["--max-follow-streams", "10"], 1).await;
    let client = cluster.client().await;
    // A task that stays running, so that every stream stays open.
    let gate = cluster.dir().join("gate");
    let task = submit_held(&client, &gate).await;
    let first = flood(&cluster, task, 6, 0);
    assert_eq!(tally(&first).await, (6, 0));
    let second = flood(&cluster, task, 6, 1);
    assert_eq!(tally(&second).await, (4, 2), "10 in all, whoever asks");
    assert!(
        second.output().contains("--max-follow-streams"),
        "{}",
        second.output()
    );
    std::fs::write(&gate, b"").expect("gate");
}
