//! Scenario 10: how the hub's cost grows with engines, with the history and with concurrent
//! clients. Each series is a list of points in the JSON (`results.growth`), drawn by
//! `--charts`; a figure that grows faster than linearly is printed as a finding.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warren::Job;
use warren::proto::{ListTasksRequest, TaskState};

use crate::clients::{Processes, Spec, Work, error_summary};
use crate::load::mib;
use crate::options::Size;
use crate::procs::{Cluster, RssWatch, cpu_time, rss, wait_until};
use crate::stats::{Samples, ms, us};
use crate::{Report, scenarios, sim};

/// The hub flag the 5,000-engine point needs (the default is 4,096).
pub(crate) const FLAGS: [&str; 2] = ["--max-engines", "8192"];

/// How a figure should grow for the hub to scale: per unit (flat) or in total (at most
/// linearly).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A cost per task or per call: growing at all means the total grows faster than linearly.
    PerUnit,
    /// A total: growing faster than x is the finding.
    Total,
}

/// A series: its name, its x key, and each figure with how it should grow.
pub(crate) type Series = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// The series, their x keys, and what each figure should do: shared with the charts.
pub(crate) const SERIES: [Series; 3] = [
    (
        "engines",
        "engines",
        &[
            ("hub_cpu_us_per_task", Kind::PerUnit),
            ("rss_growth_bytes", Kind::Total),
            ("idle_cpu_percent", Kind::Total),
        ],
    ),
    (
        "history",
        "tasks",
        &[
            ("list_label_ms", Kind::Total),
            ("list_failed_ms", Kind::Total),
            ("restart_ms", Kind::Total),
            ("db_bytes", Kind::Total),
            ("rss_after_restart_bytes", Kind::Total),
            ("fill_hub_cpu_us_per_task", Kind::PerUnit),
        ],
    ),
    (
        "clients",
        "clients",
        &[
            ("hub_cpu_us_per_task", Kind::PerUnit),
            ("rss_peak_growth_bytes", Kind::Total),
        ],
    ),
];

/// The scenario, at `size`.
pub(crate) async fn scenario(
    report: &mut Report,
    hub_flags: &[&str],
    size: Size,
) -> anyhow::Result<()> {
    let mut flags = hub_flags.to_vec();
    flags.extend(FLAGS);
    // 100 clients follow 50 tasks each: past the hub's default 1,024 follow streams.
    flags.extend(crate::load::FLAGS);
    let engines = by_engines(report, &flags, size).await?;
    let history = by_history(report, &flags, size).await?;
    let clients = by_clients(report, &flags, size).await?;
    let mut growth = json!({"hub_flags": FLAGS.join(" "), "engines": engines,
                            "history": history, "clients": clients});
    let found = findings(&growth);
    for finding in &found {
        report.row("10 FINDING", finding.clone(), String::new(), String::new());
    }
    growth["findings"] = json!(found);
    report.record("growth", growth);
    Ok(())
}

/// Hub memory, idle CPU and CPU per task with 10 to 5,000 (simulated) engines.
async fn by_engines(report: &mut Report, flags: &[&str], size: Size) -> anyhow::Result<Value> {
    let counts = size.pick(
        vec![10, 100, 1000, 5000],
        vec![10, 100, 1000, 5000],
        vec![2, 5, 10, 20],
    );
    let tasks = size.pick(5000, 1000, 20);
    let idle = size.pick(
        Duration::from_secs(5),
        Duration::from_secs(2),
        Duration::from_millis(200),
    );
    let mut points = Vec::new();
    for n in counts {
        let hub = Cluster::hub(flags).await?;
        let pid = hub.hub_pid();
        let fresh = rss(pid);
        let sims = sim::start(&hub.connection_file(), n).await?;
        let client = hub.client().await?;
        wait_until(Duration::from_secs(300), || {
            let client = client.clone();
            async move { client.engines().await.is_ok_and(|e| e.len() >= n) }
        })
        .await?;
        let with = rss(pid);
        let cpu = cpu_time(pid);
        tokio::time::sleep(idle).await;
        let idle_cpu = cpu_time(pid).saturating_sub(cpu).as_secs_f64() / idle.as_secs_f64();
        let t = scenarios::throughput(&hub, &client, Job::argv(["/bin/true"]), tasks, 128).await?;
        let after = rss(pid);
        report.row(
            &format!("10 growth: {n} engines"),
            format!(
                "hub CPU {} µs/task, RSS {}",
                us(t.hub_cpu_per_task()),
                mib(with)
            ),
            format!(
                "idle CPU {:.1}%, {:.0} tasks/s",
                idle_cpu * 100.0,
                t.tasks_per_s
            ),
            String::new(),
        );
        points.push(
            json!({"engines": n, "tasks": tasks, "rss_fresh_bytes": fresh,
                           "rss_bytes": with, "rss_growth_bytes": with.saturating_sub(fresh),
                           "rss_after_tasks_bytes": after, "idle_cpu_percent": idle_cpu * 100.0,
                           "hub_cpu_us_per_task": us(t.hub_cpu_per_task()),
                           "tasks_per_s": t.tasks_per_s}),
        );
        drop((sims, client));
        hub.stop().await;
    }
    Ok(json!(points))
}

/// Labelled tasks submitted first, so that a filter on the label looks past the whole history.
const NEEDLES: usize = 3;

/// ListTasks with a filter, restart time, database size and memory with a history of 0 to
/// 1,000,000 tasks, written through the hub by simulated engines: each Submit of a job for
/// all engines makes one task per engine, a few Submits in flight.
async fn by_history(report: &mut Report, flags: &[&str], size: Size) -> anyhow::Result<Value> {
    let levels: Vec<usize> = size.pick(
        vec![0, 100_000, 1_000_000],
        vec![0, 10_000, 100_000],
        vec![0, 100, 400],
    );
    let engines = size.pick(1000, 1000, 10);
    let mut hub = Cluster::hub(flags).await?;
    let mut sims = Some(sim::start(&hub.connection_file(), engines).await?);
    let mut client = ready(&hub, engines).await?;
    for _ in 0..NEEDLES {
        client
            .submit(Job::argv(["/bin/true"]).label("needle", "yes"))
            .await?;
    }
    let mut have = 0usize;
    let mut points = Vec::new();
    for level in levels {
        let added = level.saturating_sub(have).div_ceil(engines) * engines;
        let (fill_seconds, fill_cpu) = if added > 0 {
            fill(&hub, &client, added, engines).await?
        } else {
            (0.0, Duration::ZERO)
        };
        have += added;
        let warm_label = list_time(&client, needle_filter()).await;
        let warm_failed = list_time(&client, failed_filter()).await;
        let in_memory = client.queue_status().await?.tasks_in_memory;
        let db = db_bytes(&hub)?;
        drop(sims.take());
        drop(client);
        hub.stop_hub().await;
        let restart = hub.start_hub(flags).await?;
        let after_restart = rss(hub.hub_pid());
        client = hub.client().await?;
        let label = list_time(&client, needle_filter()).await;
        let failed = list_time(&client, failed_filter()).await;
        let per_task = fill_cpu.as_secs_f64() * 1e6 / added.max(1) as f64;
        report.row(
            &format!("10 growth: {have} tasks of history"),
            format!(
                "ListTasks label {} ms, failed {} ms",
                shown(label),
                shown(failed)
            ),
            format!(
                "restart {} ms, db {}, RSS {}",
                ms(restart),
                mib(db),
                mib(after_restart)
            ),
            if fill_seconds > 0.0 {
                format!("written in {fill_seconds:.0} s")
            } else {
                String::new()
            },
        );
        points.push(
            json!({"tasks": have, "list_label_ms": label, "list_failed_ms": failed,
                           "list_label_warm_ms": warm_label, "list_failed_warm_ms": warm_failed,
                           "restart_ms": ms(restart), "db_bytes": db,
                           "rss_after_restart_bytes": after_restart, "tasks_in_memory": in_memory,
                           "fill_seconds": fill_seconds, "fill_hub_cpu_us_per_task": per_task}),
        );
        sims = Some(sim::start(&hub.connection_file(), engines).await?);
        client = ready(&hub, engines).await?;
    }
    drop((sims, client));
    hub.stop().await;
    Ok(json!({"engines_writing": engines, "needles": NEEDLES, "points": points}))
}

/// A figure of `list_time` for the table.
fn shown(ms: Option<f64>) -> String {
    ms.map_or_else(|| "(failed)".into(), |ms| ms.to_string())
}

/// A client once `engines` engines are registered.
async fn ready(hub: &Cluster, engines: usize) -> anyhow::Result<warren::Client> {
    let client = hub.client().await?;
    wait_until(Duration::from_secs(300), || {
        let client = client.clone();
        async move { client.engines().await.is_ok_and(|e| e.len() >= engines) }
    })
    .await?;
    Ok(client)
}

/// Writes at least `tasks` tasks (whole Submits of one task per engine, four in flight) and
/// waits until they have ended; the seconds it took and the hub's CPU time.
async fn fill(
    hub: &Cluster,
    client: &warren::Client,
    tasks: usize,
    engines: usize,
) -> anyhow::Result<(f64, Duration)> {
    use futures_util::{StreamExt, TryStreamExt};
    let cpu = cpu_time(hub.hub_pid());
    let start = Instant::now();
    let submits = tasks.div_ceil(engines);
    futures_util::stream::iter(0..submits)
        .map(|_| client.submit(Job::argv(["/bin/true"]).all()))
        .buffer_unordered(4)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    wait_until(Duration::from_secs(3600), || {
        let client = client.clone();
        async move {
            client.queue_status().await.is_ok_and(|q| {
                q.unassigned == 0 && q.engines.iter().all(|e| e.running == 0 && e.queued == 0)
            })
        }
    })
    .await?;
    Ok((
        start.elapsed().as_secs_f64(),
        cpu_time(hub.hub_pid()).saturating_sub(cpu),
    ))
}

fn needle_filter() -> ListTasksRequest {
    ListTasksRequest {
        labels: [("needle".to_string(), "yes".to_string())].into(),
        ..ListTasksRequest::default()
    }
}

fn failed_filter() -> ListTasksRequest {
    ListTasksRequest {
        states: vec![TaskState::Failed as i32],
        ..ListTasksRequest::default()
    }
}

/// The median of five ListTasks calls with this filter (first page), in ms; None (JSON null,
/// and said) if a call fails, e.g. no answer within the client's deadline: a finding, not the
/// end of the run.
async fn list_time(client: &warren::Client, filter: ListTasksRequest) -> Option<f64> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        if let Err(err) = client.tasks_page(filter.clone()).await {
            println!(
                "    growth: ListTasks {filter:?} failed after {:?}: {err}",
                start.elapsed()
            );
            return None;
        }
        samples.push(start.elapsed());
    }
    Some(ms(Samples::new(samples).p50()))
}

/// The database and its WAL, in bytes.
fn db_bytes(hub: &Cluster) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(hub.dir.path())? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("hub.db") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Hub CPU per task and peak memory with 1 to 100 client processes sharing the same tasks.
async fn by_clients(report: &mut Report, flags: &[&str], size: Size) -> anyhow::Result<Value> {
    let counts = size.pick(vec![1, 10, 100], vec![1, 10, 100], vec![1, 2, 4]);
    let total = size.pick(10_000, 2_000, 40);
    let engines = size.pick(100, 100, 5);
    let mut points = Vec::new();
    for n in counts {
        let hub = Cluster::hub(flags).await?;
        let pid = hub.hub_pid();
        let sims = sim::start(&hub.connection_file(), engines).await?;
        drop(ready(&hub, engines).await?);
        let each = total / n;
        let spec = Spec {
            connection_file: hub.connection_file(),
            work: Work::Submit {
                tasks: each,
                in_flight: each.min(50),
            },
        };
        let processes = Processes::start(&vec![spec; n], Duration::from_secs(300)).await?;
        let before = rss(pid);
        let watch = RssWatch::start(pid);
        let (reports, elapsed, hub_cpu) = processes.timed(pid, Duration::from_secs(1800)).await?;
        let peak = watch.stop(pid);
        let done = each * n;
        let (errors, first_errors) = error_summary(&reports);
        let finish = Samples::new(
            reports
                .iter()
                .flat_map(|r| &r.tasks)
                .map(|t| Duration::from_micros(t.finish_us))
                .collect(),
        );
        let per_task = hub_cpu.as_secs_f64() * 1e6 / done.max(1) as f64;
        report.row(
            &format!("10 growth: {n} clients"),
            format!("hub CPU {per_task:.1} µs/task, peak {}", mib(peak)),
            format!(
                "{:.0} tasks/s, end p50 {} ms",
                done as f64 / elapsed.as_secs_f64(),
                ms(finish.p50())
            ),
            if errors > 0 {
                format!("{errors} errors")
            } else {
                String::new()
            },
        );
        points.push(json!({"clients": n, "tasks": done, "engines": engines,
                           "hub_cpu_us_per_task": per_task, "rss_before_bytes": before,
                           "rss_peak_bytes": peak, "rss_peak_growth_bytes": peak.saturating_sub(before),
                           "tasks_per_s": done as f64 / elapsed.as_secs_f64(),
                           "finish_p50_ms": ms(finish.p50()), "finish_p99_ms": ms(finish.p99()),
                           "errors": errors, "first_errors": first_errors}));
        drop(sims);
        hub.stop().await;
    }
    Ok(json!(points))
}

/// The points of a series (the history keeps them under `points`).
pub(crate) fn points<'a>(growth: &'a Value, series: &str) -> &'a [Value] {
    let value = &growth[series];
    value["points"]
        .as_array()
        .or_else(|| value.as_array())
        .map_or(&[], Vec::as_slice)
}

/// Figures that grow faster than linearly between two neighbouring points (x above 0):
/// a total whose log-log slope passes 1.15, a per-unit cost that grows by more than half
/// with a slope past 0.15.
pub(crate) fn findings(growth: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (series, x_key, metrics) in SERIES {
        let points = points(growth, series);
        for (metric, kind) in metrics {
            for pair in points.windows(2) {
                let get = |p: &Value, k: &str| p[k].as_f64().unwrap_or(0.0);
                let (x1, x2) = (get(&pair[0], x_key), get(&pair[1], x_key));
                let (y1, y2) = (get(&pair[0], metric), get(&pair[1], metric));
                if x1 <= 0.0 || x2 <= x1 || y1 <= 0.0 || y2 <= 0.0 {
                    continue;
                }
                let slope = (y2 / y1).ln() / (x2 / x1).ln();
                let faster = match kind {
                    Kind::Total => slope > 1.15,
                    Kind::PerUnit => y2 / y1 > 1.5 && slope > 0.15,
                };
                if faster {
                    found.push(format!(
                        "{metric} ×{:.1} for {x_key} ×{:.0} ({x1}→{x2}): faster than linear",
                        y2 / y1,
                        x2 / x1
                    ));
                }
            }
        }
    }
    found
}
