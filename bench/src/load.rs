//! Scenario 9: load. Many client processes at once, each submitting and following its own
//! tasks, against a thousand registered engines (simulated, plus two real ones); then
//! thousands of followers of running tasks, half of them stalled, to see that the hub's memory
//! stays bounded and that a stalled follower does not hold back a fast one.

use futures_util::TryStreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use warren::Job;
use warren::proto::{ListTasksRequest, TaskState};

use crate::clients::{Processes, Report as ClientReport, Spec, Work, error_summary};
use crate::options::Size;
use crate::procs::{Cluster, RssWatch, peak_rss, rss, wait_until};
use crate::stats::{Samples, ms};
use crate::{Report, sim, verdict};

/// The hub flags this scenario adds to the bench's: the defaults (1,024 follow streams in all,
/// 256 per client process, 64 per task) are below what it opens.
pub(crate) const FLAGS: [&str; 6] = [
    "--max-follow-streams",
    "20000",
    "--max-streams-per-client",
    "1024",
    "--max-followers-per-task",
    "1024",
];

/// Bytes per output line of a followed task (a time stamp, then padding).
const LINE: usize = 4096;

/// Tasks per real engine for the followers (each engine gets as many slots).
const FOLLOWED_PER_ENGINE: usize = 8;

/// The scenario, at `size`.
pub(crate) async fn scenario(
    report: &mut Report,
    hub_flags: &[&str],
    size: Size,
) -> anyhow::Result<()> {
    let processes = size.pick(100, 100, 4);
    let tasks_each = size.pick(100, 10, 5);
    let engines = size.pick(1000, 1000, 20);
    let mut flags = hub_flags.to_vec();
    flags.extend(FLAGS);
    let mut cluster = Cluster::hub(&flags).await?;
    let _sims = sim::start(&cluster.connection_file(), engines - 2).await?;
    let slots = FOLLOWED_PER_ENGINE.to_string();
    cluster.add_engines(2, &["--slots", &slots]).await?;
    let client = cluster.client().await?;
    wait_until(Duration::from_secs(120), || {
        let client = client.clone();
        async move { client.engines().await.is_ok_and(|e| e.len() >= engines) }
    })
    .await?;
    report.row(
        "9 load: hub flags",
        FLAGS.join(" "),
        "(defaults: 1024 streams, 256/process, 64/task)".into(),
        String::new(),
    );

    // Part one: every process submits and follows its tasks, all at once.
    let hub = cluster.hub_pid();
    let work = Work::Submit {
        tasks: tasks_each,
        in_flight: tasks_each,
    };
    let spec = Spec {
        connection_file: cluster.connection_file(),
        work,
    };
    let started = Processes::start(&vec![spec; processes], Duration::from_secs(300)).await?;
    let (reports, elapsed, hub_cpu) = started.timed(hub, Duration::from_secs(1800)).await?;
    let peak = peak_rss(hub);
    let want = processes * tasks_each;
    let tasks: Vec<_> = reports.iter().flat_map(|r| &r.tasks).collect();
    let succeeded = tasks.iter().filter(|t| t.succeeded).count();
    let (errors, first_errors) = error_summary(&reports);
    let on_hub = count(&client, Some(TaskState::Succeeded)).await?;
    let all_on_hub = count(&client, None).await?;
    let submit = Samples::new(micros(tasks.iter().map(|t| t.submit_us)));
    let finish = Samples::new(micros(tasks.iter().map(|t| t.finish_us)));
    let accounted = succeeded == want && errors == 0 && on_hub == want && all_on_hub == want;
    report.row(
        &format!("9 load: {processes} procs × {tasks_each} tasks"),
        format!(
            "submit p50 {} p99 {} ms; end p50 {} p99 {} ms",
            ms(submit.p50()),
            ms(submit.p99()),
            ms(finish.p50()),
            ms(finish.p99())
        ),
        format!(
            "{engines} engines; {:.0} tasks/s; hub peak {}",
            want as f64 / elapsed.as_secs_f64(),
            mib(peak)
        ),
        format!(
            "{succeeded}/{want} ok, {errors} errors: {}",
            verdict(accounted)
        ),
    );
    for error in &first_errors {
        println!("    load client error: {error}");
    }
    let part_one = json!({
        "processes": processes, "tasks_per_process": tasks_each, "engines": engines,
        "real_engines": 2, "tasks": want, "succeeded_seen_by_clients": succeeded,
        "succeeded_on_hub": on_hub, "tasks_on_hub": all_on_hub, "errors": errors,
        "first_errors": first_errors, "all_accounted": accounted,
        "submit_p50_ms": ms(submit.p50()), "submit_p99_ms": ms(submit.p99()),
        "finish_p50_ms": ms(finish.p50()), "finish_p99_ms": ms(finish.p99()),
        "seconds": elapsed.as_secs_f64(), "tasks_per_s": want as f64 / elapsed.as_secs_f64(),
        "hub_cpu_us_per_task": hub_cpu.as_secs_f64() * 1e6 / want as f64,
        "hub_peak_rss_bytes": peak,
    });

    // Part two: followers of running tasks, half the processes stalled.
    let followers = size.pick(10_000, 2_000, 40);
    let follower_processes = size.pick(20, 20, 4);
    let seconds = size.pick(20, 8, 2);
    // Longer than the tasks live, so that the stalled followers are behind when they end.
    let stall = 2 * seconds;
    let stop = cluster.dir.path().join("stop-followed-tasks");
    let real: Vec<u32> = client
        .engines()
        .await?
        .into_iter()
        .filter(|e| e.hostname != "simulated")
        .map(|e| e.id)
        .collect();
    let mut followed = Vec::new();
    for _ in 0..FOLLOWED_PER_ENGINE {
        followed.extend(client.submit(talker(&stop).engines(real.clone())).await?);
    }
    wait_until(Duration::from_secs(120), || {
        let (client, followed) = (client.clone(), followed.clone());
        async move {
            for id in followed {
                if !client
                    .task(id)
                    .await
                    .is_ok_and(|t| t.state() == TaskState::Running)
                {
                    return false;
                }
            }
            true
        }
    })
    .await?;
    let before = rss(hub);
    let watch = RssWatch::start(hub);
    let specs: Vec<Spec> = (0..follower_processes)
        .map(|i| Spec {
            connection_file: cluster.connection_file(),
            work: Work::Follow {
                task_ids: followed.clone(),
                followers: followers / follower_processes,
                stall_ms: if i % 2 == 0 { 0 } else { stall * 1000 },
            },
        })
        .collect();
    let clock = Instant::now();
    let attached = Processes::start(&specs, Duration::from_secs(600)).await?;
    let attach = clock.elapsed();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    std::fs::write(&stop, b"")?;
    let reports = attached.reports(Duration::from_secs(600 + seconds)).await?;
    let peak_following = watch.stop(hub);
    let after = rss(hub);
    let part_two = followers_json(&reports, followers, before, peak_following, after);
    let fast = &part_two["fast"];
    let slow = &part_two["slow"];
    report.row(
        &format!("9 load: {followers} followers, {follower_processes} procs"),
        format!(
            "fast: lag p50 {} ms max {} ms",
            fast["lag_p50_ms"], fast["lag_max_ms"]
        ),
        format!(
            "stalled {stall} s: end lag max {} ms",
            slow["end_lag_max_ms"]
        ),
        format!(
            "hub RSS +{} (peak {})",
            mib(peak_following.saturating_sub(before)),
            mib(peak_following)
        ),
    );
    report.record(
        "load",
        json!({"hub_flags": FLAGS.join(" "), "submit_and_follow": part_one,
               "followers": part_two, "attach_seconds": attach.as_secs_f64(),
               "followed_tasks": followed.len(), "line_bytes": LINE,
               "task_seconds": seconds, "stall_seconds": stall}),
    );
    drop((_sims, client));
    cluster.stop().await;
    Ok(())
}

/// A task that writes a time-stamped line of `LINE` bytes every 250 ms until `stop` exists
/// (for at most ten minutes).
fn talker(stop: &std::path::Path) -> Job {
    Job::script(format!(
        "pad=$(head -c {} /dev/zero | tr '\\0' x); i=0; \
         while [ ! -e '{}' ] && [ $i -lt 2400 ]; do \
         echo \"$(date +%s%6N) $pad\"; i=$((i+1)); sleep 0.25; done",
        LINE - 18,
        stop.display()
    ))
}

/// The followers' figures, fast and stalled apart.
fn followers_json(
    reports: &[ClientReport],
    followers: usize,
    before: u64,
    peak: u64,
    after: u64,
) -> serde_json::Value {
    let group = |stalled: bool| {
        let all: Vec<_> = reports
            .iter()
            .enumerate()
            .filter(|(i, _)| (i % 2 == 1) == stalled)
            .flat_map(|(_, r)| &r.followers)
            .collect();
        let p50s = Samples::new(micros(all.iter().map(|f| f.lag_p50_us)));
        let maxes = Samples::new(micros(all.iter().map(|f| f.lag_max_us)));
        let ends = Samples::new(micros(all.iter().map(|f| f.end_lag_us)));
        json!({"followers": all.len(), "ended": all.iter().filter(|f| f.ended).count(),
               "live_lines": all.iter().map(|f| f.live_lines).sum::<usize>(),
               "lag_p50_ms": ms(p50s.p50()), "lag_p99_ms": ms(maxes.p99()),
               "lag_max_ms": ms(maxes.quantile(1.0)),
               "end_lag_min_ms": ms(ends.quantile(0.0)), "end_lag_p50_ms": ms(ends.p50()),
               "end_lag_max_ms": ms(ends.quantile(1.0))})
    };
    let (errors, first_errors) = error_summary(reports);
    json!({"followers": followers, "processes": reports.len(), "errors": errors,
           "first_errors": first_errors, "fast": group(false), "slow": group(true),
           "hub_rss_before_bytes": before, "hub_rss_peak_bytes": peak,
           "hub_rss_after_bytes": after,
           "hub_bytes_per_follower": peak.saturating_sub(before) / followers.max(1) as u64})
}

fn micros(values: impl Iterator<Item = u64>) -> Vec<Duration> {
    values.map(Duration::from_micros).collect()
}

/// Tasks in the hub's history (in this state, if one is given).
async fn count(client: &warren::Client, state: Option<TaskState>) -> anyhow::Result<usize> {
    let filter = ListTasksRequest {
        states: state.map(|s| vec![s as i32]).unwrap_or_default(),
        limit: 1000,
        ..ListTasksRequest::default()
    };
    Ok(client
        .tasks(filter)
        .try_fold(0, |n, _| async move { Ok::<_, warren::Error>(n + 1) })
        .await?)
}

/// Bytes as MiB, for tables.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
