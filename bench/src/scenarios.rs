//! The scenarios: warren doing real work, each timed against the baselines of the same run.

use anyhow::Context;
use futures_util::TryStreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use warren::EventKind;
use warren::proto::TaskState;
use warren::{Client, Job};

use crate::procs::{Cluster, CpuSplit, wait_until};
use crate::stats::{Samples, us};

/// Where a round trip's time goes, as medians (from the events' and results' timestamps,
/// all taken on this machine's clock).
pub(crate) struct Breakdown {
    /// Client sends → hub records the task as queued (signing, the call, the checks).
    pub(crate) to_hub: Duration,
    /// Queued → the engine is about to spawn the process (or write `run` to the interpreter).
    pub(crate) to_engine: Duration,
    /// The engine's own measure: a process's spawn, run and wait, or a cell's `run` written
    /// → `done` read and fds 1 and 2 drained.
    pub(crate) run: Duration,
    /// Process (or cell) ended → hub records the end.
    pub(crate) back_to_hub: Duration,
    /// Hub records the end → the client has it (commit, then the stream).
    pub(crate) to_client: Duration,
}

/// Round trips of one `true` task: submit, run, every event back, end.
pub(crate) async fn round_trip(
    client: &Client,
    runs: usize,
) -> anyhow::Result<(Samples, Breakdown)> {
    round_trips(client, runs, "a `true` task", || Job::argv(["/bin/true"])).await
}

/// `runs` round trips (after a tenth as many to warm up) of the job `job` makes, described
/// as `what` in errors: run it, read every event back to its result, which must succeed.
pub(crate) async fn round_trips(
    client: &Client,
    runs: usize,
    what: &str,
    job: impl Fn() -> Job,
) -> anyhow::Result<(Samples, Breakdown)> {
    let mut samples = Vec::with_capacity(runs);
    let mut parts: [Vec<Duration>; 5] = Default::default();
    let span = |from: i64, to: i64| Duration::from_micros(to.saturating_sub(from).max(0) as u64);
    for i in 0..runs + runs / 10 {
        let start = Instant::now();
        let sent_us = warren_proto::now_us();
        let mut events = client.run(job()).await?;
        let (mut queued_us, mut result_at) = (0, None);
        while let Some(event) = events.try_next().await? {
            match event.kind {
                EventKind::State {
                    state: TaskState::Queued,
                    ..
                } => queued_us = event.time_us,
                EventKind::Result(result) => result_at = Some((event.time_us, result)),
                _ => {}
            }
        }
        let received_us = warren_proto::now_us();
        let Some((ended_us, result)) = result_at else {
            anyhow::bail!("{what} ended without a result");
        };
        anyhow::ensure!(result.succeeded(), "{what} did not succeed: {result:?}");
        if i >= runs / 10 {
            samples.push(start.elapsed());
            parts[0].push(span(sent_us, queued_us));
            parts[1].push(span(queued_us, result.started_us));
            parts[2].push(span(result.started_us, result.finished_us));
            parts[3].push(span(result.finished_us, ended_us));
            parts[4].push(span(ended_us, received_us));
        }
    }
    let [a, b, c, d, e] = parts.map(|p| Samples::new(p).p50());
    Ok((
        Samples::new(samples),
        Breakdown {
            to_hub: a,
            to_engine: b,
            run: c,
            back_to_hub: d,
            to_client: e,
        },
    ))
}

/// What a throughput run measured.
pub(crate) struct Throughput {
    /// Tasks finished per second.
    pub(crate) tasks_per_s: f64,
    /// CPU time per task: hub, engines, the tasks themselves, the bench (the client).
    pub(crate) cpu_per_task: [Duration; 4],
    /// Wall time.
    pub(crate) elapsed: Duration,
}

impl Throughput {
    /// The hub's CPU time per task.
    pub(crate) fn hub_cpu_per_task(&self) -> Duration {
        self.cpu_per_task[0]
    }

    /// The ratio to a spawn capacity of `capacity` tasks/s, and the row's words for it.
    pub(crate) fn against(&self, capacity: f64) -> (f64, String) {
        let ratio = self.tasks_per_s / capacity;
        let words = format!(
            "capacity {capacity:.0}/s: ×{ratio:.2}; hub {} µs/task",
            us(self.hub_cpu_per_task())
        );
        (ratio, words)
    }
}

/// `tasks` tasks, each submitted with its own Submit call (up to `in_flight` calls at once),
/// timed until every one has ended.
pub(crate) async fn throughput(
    cluster: &Cluster,
    client: &Client,
    job: Job,
    tasks: usize,
    in_flight: usize,
) -> anyhow::Result<Throughput> {
    timed(cluster, client, tasks, async {
        let gate = Arc::new(Semaphore::new(in_flight));
        let mut handles = Vec::with_capacity(tasks);
        let last = Arc::new(AtomicU64::new(0));
        for _ in 0..tasks {
            let permit = gate.clone().acquire_owned().await?;
            let client = client.clone();
            let job = job.clone();
            let last = last.clone();
            handles.push(tokio::spawn(async move {
                let ids = client.submit(job).await;
                drop(permit);
                if let Ok(ids) = &ids {
                    last.fetch_max(ids[0], Ordering::Relaxed);
                }
                ids.map(|_| ())
            }));
        }
        for handle in handles {
            handle.await??;
        }
        Ok(last.load(Ordering::Relaxed))
    })
    .await
}

/// `tasks` tasks submitted `batch` at a time with SubmitBatch (all batches at once, as a
/// script with many tasks would), timed until every one has ended: scenario 2 without a
/// unary call per task.
pub(crate) async fn throughput_batched(
    cluster: &Cluster,
    client: &Client,
    job: Job,
    tasks: usize,
    batch: usize,
) -> anyhow::Result<Throughput> {
    timed(cluster, client, tasks, async {
        let mut last = 0;
        for first in (0..tasks).step_by(batch) {
            let count = batch.min(tasks - first);
            let ids = client.submit_batch(vec![job.clone(); count]).await?;
            last = last.max(ids.into_iter().flatten().max().unwrap_or(0));
        }
        Ok(last)
    })
    .await
}

/// Times `tasks` tasks from their submission (`submit`, which returns the last task's id)
/// until every one has ended, with the CPU they cost each process.
async fn timed(
    cluster: &Cluster,
    client: &Client,
    tasks: usize,
    submit: impl Future<Output = anyhow::Result<u64>>,
) -> anyhow::Result<Throughput> {
    let cpu = CpuSplit::now(cluster);
    let start = Instant::now();
    let last = submit.await?;
    until_all_ended(client, last).await?;
    let elapsed = start.elapsed();
    Ok(Throughput {
        tasks_per_s: tasks as f64 / elapsed.as_secs_f64(),
        cpu_per_task: CpuSplit::now(cluster).per_task_since(&cpu, tasks),
        elapsed,
    })
}

/// Waits until nothing waits or runs and the task `last` has ended: every task is done.
async fn until_all_ended(client: &Client, last: u64) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(600), || {
        let client = client.clone();
        async move {
            let idle = client.queue_status().await.is_ok_and(|q| {
                q.unassigned == 0 && q.engines.iter().all(|e| e.running == 0 && e.queued == 0)
            });
            idle && client.task(last).await.is_ok_and(|t| t.state().is_final())
        }
    })
    .await
}

/// Bytes per second of one task's stdout reaching the client, optionally with a second,
/// slow follower (one event every 10 ms) attached.
pub(crate) async fn stream(
    client: &Client,
    bytes: u64,
    slow_follower: bool,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut events = client
        .run(Job::argv(["head", "-c", &bytes.to_string(), "/dev/zero"]))
        .await?;
    let mut slow = None;
    let mut received = 0u64;
    let mut ok = false;
    while let Some(event) = events.try_next().await? {
        if slow_follower && slow.is_none() {
            let mut follower = client.follow(event.task_id, 0).await?;
            slow = Some(tokio::spawn(async move {
                while let Ok(Some(_)) = follower.try_next().await {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
        match event.kind {
            EventKind::Output { data, .. } => received += data.len() as u64,
            EventKind::Gap { bytes, .. } => anyhow::bail!("the fast follower missed {bytes} bytes"),
            EventKind::Result(result) => ok = result.succeeded(),
            _ => {}
        }
    }
    let elapsed = start.elapsed();
    if let Some(slow) = slow {
        slow.abort();
    }
    anyhow::ensure!(
        ok && received == bytes,
        "received {received} of {bytes} bytes"
    );
    Ok(bytes as f64 / elapsed.as_secs_f64())
}

/// One Execute of `true` to every engine, timed until all are done.
pub(crate) async fn fan_out(
    client: &Client,
    engines: usize,
    runs: usize,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut events = client.run(Job::argv(["/bin/true"]).all()).await?;
        let mut done = 0;
        while let Some(event) = events.try_next().await? {
            if matches!(event.kind, EventKind::Result(_)) {
                done += 1;
            }
        }
        anyhow::ensure!(done == engines, "{done} of {engines} tasks ended");
        samples.push(start.elapsed());
    }
    Ok(Samples::new(samples))
}

/// Seconds from `warren cluster start -n 2` until it says its engines are ready.
pub(crate) async fn cluster_start(dir: &std::path::Path, runs: usize) -> anyhow::Result<Samples> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let home = dir.join(format!("cluster-{run}"));
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let start = Instant::now();
        let mut child = tokio::process::Command::new(crate::procs::binary("warren")?)
            .arg("--socket")
            .arg(home.join("hub.sock"))
            .args(["cluster", "start", "-n", "2"])
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_RUNTIME_DIR", &home)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("ready in") {
                    return Ok(());
                }
            }
            anyhow::bail!("cluster start ended without saying it was ready")
        })
        .await;
        samples.push(start.elapsed());
        if let Some(pid) = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        ready.context("cluster start did not become ready in 30 s")??;
    }
    Ok(Samples::new(samples))
}
