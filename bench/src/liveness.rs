//! Scenario 8: how soon silence is noticed. A hub with a 1 s engine timeout and 200 ms
//! heartbeats writes off a SIGSTOPped engine; a follower of a SIGSTOPped hub (100 ms
//! heartbeats) ends with `Silent`. The end-to-end tests check that both happen, and why
//! (`tests/tests/recovery.rs`, `tests/tests/shutdown.rs`); how soon is measured here.

use futures_util::TryStreamExt;
use rustix::process::{Pid, Signal, kill_process};
use std::time::{Duration, Instant};
use warren::Job;

use crate::procs::{Cluster, wait_until};
use crate::stats::Samples;

/// The hub flags of the engine scenario: a 1 s timeout, 200 ms heartbeats.
pub(crate) const ENGINE_TIMEOUT: [&str; 4] =
    ["--engine-timeout-ms", "1000", "--heartbeat-ms", "200"];

/// The hub flags of the follower scenario: 100 ms heartbeats.
pub(crate) const FOLLOW_HEARTBEAT: [&str; 2] = ["--heartbeat-ms", "100"];

/// Longer than any of this takes on a working hub.
const PATIENCE: Duration = Duration::from_secs(60);

fn signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| anyhow::anyhow!("no pid"))?;
    Ok(kill_process(pid, signal)?)
}

/// From SIGSTOP to the engine gone from the hub's list, `runs` times (SIGCONT between).
pub(crate) async fn engine_declared_dead(runs: usize) -> anyhow::Result<Samples> {
    let mut cluster = Cluster::hub(&ENGINE_TIMEOUT).await?;
    cluster.add_engines(1, &["--max-backoff-ms", "200"]).await?;
    let client = cluster.client().await?;
    let pid = cluster.engines[0].pid();
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        signal(pid, Signal::STOP)?;
        let stopped = Instant::now();
        wait_until(PATIENCE, || {
            let client = client.clone();
            async move { client.engines().await.is_ok_and(|e| e.is_empty()) }
        })
        .await?;
        samples.push(stopped.elapsed());
        signal(pid, Signal::CONT)?;
        wait_until(PATIENCE, || {
            let client = client.clone();
            async move { client.engines().await.is_ok_and(|e| e.len() == 1) }
        })
        .await?;
    }
    drop(client);
    cluster.stop().await;
    Ok(Samples::new(samples))
}

/// From SIGSTOP of the hub to its follower's `Silent`, `runs` times (a fresh hub each).
pub(crate) async fn follower_of_a_frozen_hub(runs: usize) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut cluster = Cluster::hub(&FOLLOW_HEARTBEAT).await?;
        cluster.add_engines(1, &[]).await?;
        let client = cluster.client().await?;
        let mut events = client.run(Job::script("exec sleep 60")).await?;
        let hub = cluster.hub_pid();
        signal(hub, Signal::STOP)?;
        let stopped = Instant::now();
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                match events.try_next().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(anyhow::anyhow!("the stream ended as if the task had")),
                    Err(warren::Error::Silent(_)) => return Ok(stopped.elapsed()),
                    Err(err) => return Err(err.into()),
                }
            }
        })
        .await;
        signal(hub, Signal::CONT)?;
        drop((events, client));
        cluster.stop().await;
        samples.push(ended.map_err(|_| anyhow::anyhow!("the follower hung"))??);
    }
    Ok(Samples::new(samples))
}
