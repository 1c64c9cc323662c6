//! Batches and dependencies: how soon a task that waits for 9,999 others starts after the
//! last of them ends (against a two-task chain, in the same run), and `warren map`'s
//! throughput against one Submit call per task (scenario 2's way), with both processes'
//! memory.

use anyhow::Context;
use futures_util::TryStreamExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use warren::proto::{ListTasksRequest, TaskInfo, TaskState};
use warren::{Client, Job};

use crate::procs::{Cluster, binary, rss, wait_until};
use crate::stats::Samples;

/// Requests per SubmitBatch call when the bench submits the dependencies.
const BATCH: usize = 1000;

/// A task's start and end, from its record (microseconds since the epoch).
fn times(info: &TaskInfo) -> anyhow::Result<(i64, i64)> {
    let result = info.result.as_ref().context("the task has not ended")?;
    anyhow::ensure!(
        info.state() == TaskState::Succeeded,
        "task {} ended {}: {}",
        info.id,
        info.state().label(),
        result.error
    );
    Ok((result.started_us, result.finished_us))
}

fn span(from_us: i64, to_us: i64) -> Duration {
    Duration::from_micros(to_us.saturating_sub(from_us).max(0) as u64)
}

/// One fan-in: `width` `true` tasks, then one `true` after all of them succeed; the time
/// from the last one's end to the final task's start.
pub(crate) async fn fan_in(client: &Client, width: usize, run: usize) -> anyhow::Result<Duration> {
    let label = format!("fan-in-{run}-{}", warren_proto::now_us());
    let job = Job::argv(["/bin/true"]).label("bench", &label);
    let mut ids = Vec::with_capacity(width);
    for start in (0..width).step_by(BATCH) {
        let count = BATCH.min(width - start);
        let made = client.submit_batch(vec![job.clone(); count]).await?;
        ids.extend(made.into_iter().flatten());
    }
    let last = client
        .submit(Job::argv(["/bin/true"]).after_ok(ids))
        .await?[0];
    let last_info = wait(client, last).await?;
    let (started, _) = times(&last_info)?;
    let filter = ListTasksRequest {
        labels: [("bench".to_owned(), label)].into(),
        limit: 1000,
        ..ListTasksRequest::default()
    };
    let deps: Vec<TaskInfo> = client.tasks(filter).try_collect().await?;
    anyhow::ensure!(
        deps.len() == width,
        "{} of {width} dependencies listed",
        deps.len()
    );
    let mut ended = 0;
    for dep in &deps {
        ended = ended.max(times(dep)?.1);
    }
    Ok(span(ended, started))
}

/// `runs` two-task chains: the time from the first's end to the second's start.
pub(crate) async fn chain(client: &Client, runs: usize) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        // Held a little, so the second is waiting when the first ends.
        let first = client.submit(Job::argv(["sleep", "0.002"])).await?[0];
        let second = client
            .submit(Job::argv(["/bin/true"]).after_ok([first]))
            .await?[0];
        let (_, ended) = times(&wait(client, first).await?)?;
        let (started, _) = times(&wait(client, second).await?)?;
        samples.push(span(ended, started));
    }
    Ok(Samples::new(samples))
}

async fn wait(client: &Client, id: u64) -> anyhow::Result<TaskInfo> {
    tokio::time::timeout(Duration::from_secs(600), client.wait(id))
        .await
        .context("a task did not end within 10 minutes")?
        .map_err(Into::into)
}

/// What a map run measured.
pub(crate) struct MapRun {
    /// Tasks finished per second.
    pub(crate) tasks_per_s: f64,
    /// The client's largest RSS seen.
    pub(crate) client_rss: u64,
    /// The hub's largest RSS seen during the run.
    pub(crate) hub_rss: u64,
}

/// `warren map -j JOBS -- /bin/true` over `tasks` arguments, timed to its exit.
pub(crate) async fn map(cluster: &Cluster, tasks: usize, jobs: usize) -> anyhow::Result<MapRun> {
    let args = cluster.dir.path().join("map-args");
    let lines: String = (1..=tasks).map(|n| format!("{n}\n")).collect();
    std::fs::write(&args, lines)?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(binary("warren")?)
        .arg("--connection-file")
        .arg(cluster.connection_file())
        .args(["map", "-j", &jobs.to_string(), "--args"])
        .arg(&args)
        .args(["--", "/bin/true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("the map has no pid")?;
    let (mut client_rss, mut hub_rss) = (0, 0);
    let status = loop {
        client_rss = client_rss.max(rss(pid));
        hub_rss = hub_rss.max(rss(cluster.hub_pid()));
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    };
    let elapsed = start.elapsed();
    anyhow::ensure!(status.success(), "warren map exited with {status}");
    // The hub has let go of every task.
    let client = cluster.client().await?;
    wait_until(Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            client
                .queue_status()
                .await
                .is_ok_and(|q| q.tasks_in_memory == 0)
        }
    })
    .await?;
    Ok(MapRun {
        tasks_per_s: tasks as f64 / elapsed.as_secs_f64(),
        client_rss,
        hub_rss,
    })
}
