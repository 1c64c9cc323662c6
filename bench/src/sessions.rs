//! Session scenarios: a `pass` cell's round trip, cells per second pipelined into two
//! sessions on two engines, and the hub's memory with many idle sessions and after many cells.

use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use warren::{Client, EventKind, Job, SessionOptions};

use crate::procs::{Cluster, cpu_time};
use crate::scenarios::{Breakdown, round_trips};
use crate::stats::Samples;

/// Opens a python session on each engine, as group `name`; their ids.
async fn open(client: &Client, name: &str) -> anyhow::Result<Vec<u64>> {
    let (_, sessions) = client
        .open_sessions(SessionOptions::python().all().name(name))
        .await?;
    for s in &sessions {
        anyhow::ensure!(
            s.info().state().is_live(),
            "a session did not start: {:?}",
            s.info()
        );
    }
    Ok(sessions.iter().map(warren::Session::id).collect())
}

/// Round trips of a `pass` cell in one session: Execute, every event back, the result.
pub(crate) async fn round_trip(
    client: &Client,
    runs: usize,
) -> anyhow::Result<(Samples, Breakdown)> {
    let (_, sessions) = client
        .open_sessions(SessionOptions::python().name("rt"))
        .await?;
    let session = sessions.first().map(warren::Session::id).unwrap_or(0);
    let timed = round_trips(client, runs, "a `pass` cell", || {
        Job::cell("pass").sessions([session])
    })
    .await?;
    client.close_sessions(&[], "rt").await?;
    Ok(timed)
}

/// What a pipelined run measured.
pub(crate) struct Pipelined {
    /// Cells ended per second.
    pub(crate) cells_per_s: f64,
    /// Wall time.
    pub(crate) elapsed: Duration,
    /// CPU per cell: the hub, the engines, the interpreters, this client.
    pub(crate) hub_cpu: Duration,
    pub(crate) engines_cpu: Duration,
    pub(crate) interpreters_cpu: Duration,
    pub(crate) client_cpu: Duration,
}

/// `cells` `pass` cells into a group of one python session per engine, submitted with
/// `SubmitCells` in calls of `batch` requests (each one cell per session), `in_flight` calls
/// at once; timed until the last cell of every session has ended.
pub(crate) async fn pipelined(
    cluster: &Cluster,
    client: &Client,
    cells: usize,
    batch: usize,
    in_flight: usize,
) -> anyhow::Result<Pipelined> {
    let sessions = open(client, "throughput").await?;
    let per_request = sessions.len();
    let mut pids = Vec::new();
    for &id in &sessions {
        pids.push(client.session(id).await?.pid);
    }
    let engine_pids: Vec<u32> = cluster.engines.iter().map(|e| e.pid()).collect();
    let cpu = |pids: &[u32]| pids.iter().map(|&p| cpu_time(p)).sum::<Duration>();
    let (hub0, engines0, interp0, me0) = (
        cpu_time(cluster.hub_pid()),
        cpu(&engine_pids),
        cpu(&pids),
        cpu_time(std::process::id()),
    );
    let request = Job::cell("pass").group("throughput").into_request();
    let calls = cells.div_ceil(batch * per_request);
    let start = Instant::now();
    let mut running = JoinSet::new();
    let mut last: BTreeMap<usize, u64> = BTreeMap::new();
    for call in 0..calls {
        if running.len() >= in_flight
            && let Some(done) = running.join_next().await
        {
            let (call, ids): (usize, Vec<u64>) = done??;
            last.insert(call, ids.last().copied().unwrap_or(0));
        }
        let client = client.clone();
        let requests = vec![request.clone(); batch];
        running.spawn(async move {
            let ids = client.submit_cells(requests).await?;
            anyhow::Ok((call, ids))
        });
    }
    let mut final_ids = Vec::new();
    while let Some(done) = running.join_next().await {
        let (call, ids) = done??;
        if call == calls - 1 {
            final_ids = ids[ids.len() - per_request..].to_vec();
        }
        last.insert(call, ids.last().copied().unwrap_or(0));
    }
    for id in final_ids {
        let mut events = client.follow(id, 0).await?;
        while let Some(event) = events.try_next().await? {
            if let EventKind::Result(result) = event.kind {
                anyhow::ensure!(result.succeeded(), "cell {id}: {result:?}");
            }
        }
    }
    let elapsed = start.elapsed();
    let total = (calls * batch * per_request) as u32;
    let per = |d: Duration| d / total;
    let result = Pipelined {
        cells_per_s: f64::from(total) / elapsed.as_secs_f64(),
        elapsed,
        hub_cpu: per(cpu_time(cluster.hub_pid()) - hub0),
        engines_cpu: per(cpu(&engine_pids) - engines0),
        interpreters_cpu: per(cpu(&pids) - interp0),
        client_cpu: per(cpu_time(std::process::id()) - me0),
    };
    client.close_sessions(&[], "throughput").await?;
    Ok(result)
}

/// The hub's memory with `sessions` idle sessions (on simulated engines, which answer at
/// once), then after `cells` cells through them, once the hub is at rest. Returns (fresh, idle
/// sessions, after cells).
pub(crate) async fn hub_memory(
    hub_flags: &[&str],
    sessions: usize,
    cells: usize,
) -> anyhow::Result<(u64, u64, u64, f64)> {
    let mut flags = hub_flags.to_vec();
    flags.extend(["--max-sessions-per-engine", "100000"]);
    let hub = Cluster::hub(&flags).await?;
    let fresh = crate::procs::rss(hub.hub_pid());
    let engines = 10;
    let _sim = crate::sim::start(&hub.connection_file(), engines).await?;
    let client = hub.client().await?;
    crate::procs::wait_until(Duration::from_secs(60), || {
        let client = client.clone();
        async move { client.engines().await.is_ok_and(|e| e.len() >= engines) }
    })
    .await?;
    for i in 0..sessions / engines {
        let (_, opened) = client
            .open_sessions(SessionOptions::python().all().name(format!("idle-{i}")))
            .await?;
        anyhow::ensure!(opened.len() == engines, "opened {}", opened.len());
    }
    let idle = crate::procs::rss(hub.hub_pid());
    let start = Instant::now();
    let batch = 100;
    let mut last = 0;
    let groups = sessions / engines;
    for call in 0..cells.div_ceil(batch * engines) {
        let group = format!("idle-{}", call % groups);
        let requests = vec![Job::cell("pass").group(group).into_request(); batch];
        last = client
            .submit_cells(requests)
            .await?
            .last()
            .copied()
            .unwrap_or(0);
    }
    crate::procs::wait_until(Duration::from_secs(600), || {
        let client = client.clone();
        async move {
            client.task(last).await.is_ok_and(|t| t.state().is_final())
                && client
                    .queue_status()
                    .await
                    .is_ok_and(|q| q.tasks_in_memory == 0)
        }
    })
    .await?;
    let rate = cells as f64 / start.elapsed().as_secs_f64();
    let after = crate::procs::settled_rss(hub.hub_pid()).await;
    drop((_sim, client));
    hub.stop().await;
    Ok((fresh, idle, after, rate))
}
