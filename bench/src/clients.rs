//! Load client processes: the bench starts copies of itself (`--load-client SPEC`), each one
//! client process as the hub sees it (the hub counts streams and queued tasks per process).
//! Each says `ready` on stdout once connected, waits for `go` on stdin when asked to, does its
//! work and prints one JSON report line.

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use warren::{Client, EventKind, Job};

/// Follow streams per connection: well under HTTP/2's usual 200 concurrent streams.
const STREAMS_PER_CONNECTION: usize = 100;

/// What one client process does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// The hub's connection file.
    pub(crate) connection_file: PathBuf,
    /// The work.
    pub(crate) work: Work,
}

/// The kinds of work.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Work {
    /// After `go`: submit `tasks` `/bin/true` tasks, one Submit each with up to `in_flight`
    /// at once, and follow each to its end.
    Submit {
        /// Tasks in all.
        tasks: usize,
        /// Tasks submitted and not yet ended, at most.
        in_flight: usize,
    },
    /// Open `followers` follow streams over `task_ids` (round robin), say `ready`, and read
    /// them to their ends; a follower with a stall reads its first event, then nothing for
    /// `stall_ms`, then the rest.
    Follow {
        /// The tasks.
        task_ids: Vec<u64>,
        /// Streams in all.
        followers: usize,
        /// The stall after the first event, in milliseconds.
        stall_ms: u64,
    },
}

/// One submitted task, as its client saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Submitted {
    /// The Submit call, in microseconds.
    pub(crate) submit_us: u64,
    /// From the Submit call to the task's result seen, in microseconds.
    pub(crate) finish_us: u64,
    /// Whether it ended `succeeded`.
    pub(crate) succeeded: bool,
}

/// One follower, as its client saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Followed {
    /// Output lines written after the follower opened (each carries its time of writing).
    pub(crate) live_lines: usize,
    /// The median and the largest delay from a line's writing to its arrival, in µs.
    pub(crate) lag_p50_us: u64,
    /// See `lag_p50_us`.
    pub(crate) lag_max_us: u64,
    /// From the task's end on its engine to the follower seeing it, in µs.
    pub(crate) end_lag_us: u64,
    /// Whether it saw the task's end.
    pub(crate) ended: bool,
}

/// What one client process reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    /// Submitted tasks that ended (Submit work).
    pub(crate) tasks: Vec<Submitted>,
    /// Followers (Follow work).
    pub(crate) followers: Vec<Followed>,
    /// Calls that failed, in all.
    pub(crate) errors: usize,
    /// The first few failures, in words.
    pub(crate) first_errors: Vec<String>,
}

/// All the reports' errors, and the first three of them as said.
pub(crate) fn error_summary(reports: &[Report]) -> (usize, Vec<&String>) {
    let count = reports.iter().map(|r| r.errors).sum();
    let first = reports
        .iter()
        .flat_map(|r| &r.first_errors)
        .take(3)
        .collect();
    (count, first)
}

impl Report {
    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(error.to_string());
        }
    }
}

/// The `--load-client` mode: runs the spec and prints the report.
pub(crate) fn client_main(spec: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(spec).context("a load client's spec")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match spec.work {
            Work::Submit { tasks, in_flight } => {
                submit(&spec.connection_file, tasks, in_flight).await
            }
            Work::Follow {
                task_ids,
                followers,
                stall_ms,
            } => {
                let stall = Duration::from_millis(stall_ms);
                follow(&spec.connection_file, &task_ids, followers, stall).await
            }
        }
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Connections enough for `streams` streams.
async fn connect(connection_file: &Path, streams: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(STREAMS_PER_CONNECTION).max(1) {
        clients.push(Client::connect(connection_file).await?);
    }
    Ok(clients)
}

async fn say_ready() {
    let mut stdout = tokio::io::stdout();
    let _ = stdout.write_all(b"ready\n").await;
    let _ = stdout.flush().await;
}

async fn submit(connection_file: &Path, tasks: usize, in_flight: usize) -> anyhow::Result<Report> {
    let clients = connect(connection_file, in_flight).await?;
    say_ready().await;
    let mut go = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut go)
        .await?;
    let gate = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let permit = gate.clone().acquire_owned().await?;
        let client = clients[i % clients.len()].clone();
        handles.push(tokio::spawn(async move {
            let done = submit_one(&client).await;
            drop(permit);
            done
        }));
    }
    let mut report = Report::default();
    for handle in handles {
        match handle.await? {
            Ok(task) => report.tasks.push(task),
            Err(err) => report.error(format!("{err:#}")),
        }
    }
    Ok(report)
}

async fn submit_one(client: &Client) -> anyhow::Result<Submitted> {
    let start = Instant::now();
    let ids = client.submit(Job::argv(["/bin/true"])).await?;
    let submitted = start.elapsed();
    let id = *ids.first().context("Submit returned no task id")?;
    let mut events = client.follow(id, 0).await?;
    while let Some(event) = events.try_next().await? {
        if let EventKind::Result(outcome) = event.kind {
            return Ok(Submitted {
                submit_us: submitted.as_micros() as u64,
                finish_us: start.elapsed().as_micros() as u64,
                succeeded: outcome.succeeded(),
            });
        }
    }
    anyhow::bail!("task {id}'s events ended without its result")
}

async fn follow(
    connection_file: &Path,
    task_ids: &[u64],
    followers: usize,
    stall: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!task_ids.is_empty(), "no tasks to follow");
    let clients = connect(connection_file, followers).await?;
    let mut report = Report::default();
    let mut handles = Vec::with_capacity(followers);
    for i in 0..followers {
        let client = &clients[i / STREAMS_PER_CONNECTION % clients.len()];
        let opened_us = warren_proto::now_us();
        match client.follow(task_ids[i % task_ids.len()], 0).await {
            Ok(events) => handles.push(tokio::spawn(read(events, opened_us, stall))),
            Err(err) => report.error(err),
        }
    }
    say_ready().await;
    for handle in handles {
        match handle.await? {
            Ok(followed) => report.followers.push(followed),
            Err(err) => report.error(err),
        }
    }
    Ok(report)
}

/// Reads one follower's events to the end, timing the lines written after `opened_us`.
async fn read(
    mut events: warren::Events,
    opened_us: i64,
    stall: Duration,
) -> warren::Result<Followed> {
    let mut lags = Vec::new();
    let mut partial = Vec::new();
    let mut followed = Followed::default();
    let mut first = true;
    while let Some(event) = events.try_next().await? {
        let now = warren_proto::now_us();
        match event.kind {
            EventKind::Output { data, .. } => {
                partial.extend_from_slice(&data);
                let complete = partial
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                for line in partial[..complete].split(|b| *b == b'\n') {
                    let written = line
                        .split(|b| *b == b' ')
                        .next()
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(|t| t.parse::<i64>().ok());
                    if let Some(written) = written.filter(|w| *w >= opened_us) {
                        lags.push(now.saturating_sub(written).max(0) as u64);
                    }
                }
                partial.drain(..complete);
            }
            EventKind::Result(outcome) => {
                followed.ended = true;
                followed.end_lag_us = now.saturating_sub(outcome.finished_us).max(0) as u64;
            }
            _ => {}
        }
        if std::mem::take(&mut first) && !stall.is_zero() {
            tokio::time::sleep(stall).await;
        }
    }
    lags.sort_unstable();
    followed.live_lines = lags.len();
    followed.lag_p50_us = lags.get(lags.len() / 2).copied().unwrap_or(0);
    followed.lag_max_us = lags.last().copied().unwrap_or(0);
    Ok(followed)
}

/// Client processes started by the bench, each running one spec.
pub(crate) struct Processes {
    children: Vec<tokio::process::Child>,
    lines: Vec<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
}

impl Processes {
    /// Starts one process per spec and waits until each has said `ready`.
    pub(crate) async fn start(specs: &[Spec], patience: Duration) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut processes = Self {
            children: Vec::with_capacity(specs.len()),
            lines: Vec::with_capacity(specs.len()),
        };
        for spec in specs {
            let mut child = tokio::process::Command::new(&exe)
                .arg("--load-client")
                .arg(serde_json::to_string(spec)?)
                .env("RUST_LOG", "error")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("start a load client")?;
            let stdout = child.stdout.take().context("a load client's stdout")?;
            processes.children.push(child);
            processes.lines.push(BufReader::new(stdout).lines());
        }
        tokio::time::timeout(patience, async {
            for lines in &mut processes.lines {
                let line = lines.next_line().await?;
                anyhow::ensure!(
                    line.as_deref() == Some("ready"),
                    "a load client failed to start"
                );
            }
            Ok(())
        })
        .await
        .context("the load clients did not all get ready in time")??;
        Ok(processes)
    }

    /// Tells every process to go.
    pub(crate) async fn go(&mut self) -> anyhow::Result<()> {
        for child in &mut self.children {
            child
                .stdin
                .as_mut()
                .context("a load client's stdin")?
                .write_all(b"go\n")
                .await?;
        }
        Ok(())
    }

    /// Tells every process to go and waits (up to `patience`) for every report: the reports,
    /// the time from the go to the last one, and the CPU time process `pid` spent meanwhile.
    pub(crate) async fn timed(
        mut self,
        pid: u32,
        patience: Duration,
    ) -> anyhow::Result<(Vec<Report>, Duration, Duration)> {
        let cpu = crate::procs::cpu_time(pid);
        let start = Instant::now();
        self.go().await?;
        let reports = self.reports(patience).await?;
        let elapsed = start.elapsed();
        Ok((
            reports,
            elapsed,
            crate::procs::cpu_time(pid).saturating_sub(cpu),
        ))
    }

    /// Waits for every report.
    pub(crate) async fn reports(mut self, patience: Duration) -> anyhow::Result<Vec<Report>> {
        tokio::time::timeout(patience, async {
            let mut reports = Vec::with_capacity(self.lines.len());
            for (lines, child) in self.lines.iter_mut().zip(&mut self.children) {
                let line = lines.next_line().await?;
                let status = child.wait().await?;
                let line = line
                    .with_context(|| format!("a load client ended ({status}) without a report"))?;
                reports.push(serde_json::from_str(&line).context("a load client's report")?);
            }
            Ok(reports)
        })
        .await
        .context("the load clients did not all finish in time")?
    }
}
