//! The scenarios that report several rows each, called from `main`: the hub's scale
//! (scenario 6), sessions, the interactive path and `warren cp` (scenario 9).

use serde_json::json;
use std::time::{Duration, Instant};
use warren::Job;
use warren_tests::sshd::Sshd;

use crate::procs::{Cluster, rss};
use crate::stats::{ms, us};
use crate::{Report, copy, interactive, options, procs, scenarios, sessions, sim, stats, verdict};

/// Scenario 9: a keystroke's echo through `warren exec -t` against `ssh -t` and a socket
/// ping-pong, and stdin streamed through a foreground `warren exec` against the socket bulk.
pub(crate) fn interactive(
    report: &mut Report,
    cluster: &Cluster,
    scratch: &std::path::Path,
    ping: &stats::Samples,
    bulk: f64,
    size: options::Size,
) -> anyhow::Result<()> {
    let sshd = Sshd::start(scratch);
    let runs = size.pick(2_000, 300, 20);
    let (warren, ssh) = interactive::keystroke_echo(cluster, sshd.as_ref(), runs)?;
    let (versus, target, ssh_json) = match &ssh {
        Some(ssh) => {
            let ratio = warren.p50().as_secs_f64() / ssh.p50().as_secs_f64();
            (
                format!(
                    "ssh -t p50 {} µs p99 {} µs: x{ratio:.2}",
                    us(ssh.p50()),
                    us(ssh.p99())
                ),
                format!("≤ 2× ssh: {}", verdict(ratio <= 2.0)),
                json!({"p50_us": us(ssh.p50()), "p99_us": us(ssh.p99()), "runs": ssh.len(),
                       "warren_p50_over_ssh_p50": ratio}),
            )
        }
        None => (
            "ssh -t: no sshd here".into(),
            "≤ 2× ssh: not measured".into(),
            json!({"skipped": "no OpenSSH server on this machine"}),
        ),
    };
    report.row(
        "9 keystroke echo, exec -t `cat`",
        format!("p50 {} µs  p99 {} µs", us(warren.p50()), us(warren.p99())),
        versus,
        target,
    );
    report.row(
        "9 … UDS ping-pong, same run",
        format!("p50 {} µs  p99 {} µs", us(ping.p50()), us(ping.p99())),
        String::new(),
        String::new(),
    );
    let bytes: u64 = size.pick(1 << 30, 256 << 20, 8 << 20);
    let rate = interactive::stdin_stream(cluster, bytes)?;
    let ratio = rate / bulk;
    let bound = interactive::relay_bound(bytes)?;
    report.row(
        &format!("9 stdin {} MiB into `cat`", bytes >> 20),
        format!("{:.2} GB/s", rate / 1e9),
        format!("UDS bulk {:.2} GB/s: x{ratio:.2}", bulk / 1e9),
        format!("x0.25: {}", verdict(ratio >= 0.25)),
    );
    report.row(
        "9 … the same 8 copies, 4×cat",
        format!("{:.2} GB/s", bound / 1e9),
        format!("UDS bulk: x{:.2}, the most a relay can reach", bound / bulk),
        String::new(),
    );
    report.record(
        "interactive",
        json!({"keystroke_echo": {"warren_p50_us": us(warren.p50()), "warren_p99_us": us(warren.p99()),
                                  "runs": warren.len(), "ssh": ssh_json,
                                  "uds_ping_pong_p50_us": us(ping.p50())},
               "stdin_stream": {"bytes": bytes, "gb_per_s": rate / 1e9, "ratio_to_uds_bulk": ratio,
                                "relay_bound_gb_per_s": bound / 1e9, "relay_bound_ratio_to_uds_bulk": bound / bulk}}),
    );
    Ok(())
}

/// Scenario 6: hub memory idle, with many engines, with a long history, and start-up time.
pub(crate) async fn scale(
    report: &mut Report,
    hub_flags: &[&str],
    idle_rss: u64,
    tasks: usize,
    sims: usize,
) -> anyhow::Result<()> {
    let mut hub = Cluster::hub(hub_flags).await?;
    let fresh = rss(hub.hub_pid());
    let engines = sim::start(&hub.connection_file(), sims).await?;
    let client = hub.client().await?;
    procs::wait_until(Duration::from_secs(60), || {
        let client = client.clone();
        async move { client.engines().await.is_ok_and(|e| e.len() >= sims) }
    })
    .await?;
    let with_engines = rss(hub.hub_pid());
    let t = scenarios::throughput(&hub, &client, Job::argv(["/bin/true"]), tasks, 128).await?;
    let with_history = rss(hub.hub_pid());
    let in_memory = client.queue_status().await?.tasks_in_memory;
    drop(engines);
    drop(client);
    let restart = {
        hub.stop_hub().await;
        let started = Instant::now();
        hub.start_hub(hub_flags).await?;
        started.elapsed()
    };
    let after_restart = rss(hub.hub_pid());
    hub.stop().await;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    report.row(
        "6 hub RSS idle",
        mib(fresh),
        format!("with 2 engines: {}", mib(idle_rss)),
        format!("20 MB: {}", verdict(fresh <= 20_000_000)),
    );
    report.row(
        &format!("6 hub RSS, {sims} engines"),
        mib(with_engines),
        String::new(),
        String::new(),
    );
    report.row(
        &format!("6 hub, {tasks} tasks on {sims} engines"),
        format!(
            "{:.0} tasks/s, RSS {}, {in_memory} in memory",
            t.tasks_per_s,
            mib(with_history)
        ),
        format!("hub CPU {} µs/task", us(t.hub_cpu_per_task())),
        String::new(),
    );
    report.row(
        &format!("6 hub restart with {tasks} tasks"),
        format!("ready in {} ms, RSS {}", ms(restart), mib(after_restart)),
        String::new(),
        String::new(),
    );
    report.record(
        "scale",
        json!({"idle_rss_bytes": fresh, "idle_rss_with_2_engines_bytes": idle_rss,
               "rss_with_1000_engines_bytes": with_engines, "engines": sims, "tasks": tasks,
               "simulated_tasks_per_s": t.tasks_per_s, "hub_cpu_us_per_task": us(t.hub_cpu_per_task()),
               "rss_after_tasks_bytes": with_history, "tasks_in_memory_after": in_memory,
               "restart_ms": ms(restart),
               "rss_after_restart_bytes": after_restart}),
    );
    Ok(())
}

/// Scenario 9: sessions on the real engines, with python.
pub(crate) async fn sessions(
    report: &mut Report,
    cluster: &Cluster,
    client: &warren::Client,
    unsigned: &stats::Samples,
    ping: &stats::Samples,
    scale: &dyn Fn(usize, usize) -> usize,
) -> anyhow::Result<()> {
    let (rt, parts) = sessions::round_trip(client, scale(3_000, 500)).await?;
    report.row(
        "9 `pass` cell round trip",
        format!("p50 {} ms  p99 {} ms", ms(rt.p50()), ms(rt.p99())),
        format!(
            "tonic unary {} µs, UDS ping {} µs",
            us(unsigned.p50()),
            us(ping.p50())
        ),
        format!(
            "0.3 ms: {}",
            verdict(rt.p50() <= Duration::from_micros(300))
        ),
    );
    report.row(
        "9 … where it goes (p50s, µs)",
        format!(
            "{} → hub, {} → engine, {} python",
            us(parts.to_hub),
            us(parts.to_engine),
            us(parts.run)
        ),
        format!(
            "{} → hub, {} → client",
            us(parts.back_to_hub),
            us(parts.to_client)
        ),
        String::new(),
    );
    report.record(
        "session_roundtrip_pass",
        json!({"p50_ms": ms(rt.p50()), "p99_ms": ms(rt.p99()), "runs": rt.len(), "target_p50_ms": 0.3,
               "p50_parts_us": {"client_to_hub": us(parts.to_hub), "hub_to_engine_run": us(parts.to_engine),
                                "interpreter": us(parts.run), "engine_to_hub": us(parts.back_to_hub),
                                "hub_commit_to_client": us(parts.to_client)}}),
    );
    let cells = scale(100_000, 20_000);
    let (batch, in_flight) = (256, 8);
    let p = sessions::pipelined(cluster, client, cells, batch, in_flight).await?;
    report.row(
        &format!("9 {cells} `pass` cells, 2 sessions"),
        format!("{:.0} cells/s", p.cells_per_s),
        format!(
            "CPU µs/cell: hub {} engines {} python {} client {}",
            us(p.hub_cpu),
            us(p.engines_cpu),
            us(p.interpreters_cpu),
            us(p.client_cpu)
        ),
        format!("10000/s: {}", verdict(p.cells_per_s >= 10_000.0)),
    );
    report.record(
        "session_cells_pipelined",
        json!({"cells": cells, "cells_per_s": p.cells_per_s, "seconds": p.elapsed.as_secs_f64(),
               "requests_per_call": batch, "calls_in_flight": in_flight, "sessions": 2, "engines": 2,
               "cpu_us_per_cell": {"hub": us(p.hub_cpu), "engines": us(p.engines_cpu),
                                   "python": us(p.interpreters_cpu), "client": us(p.client_cpu)},
               "target_cells_per_s": 10000}),
    );
    Ok(())
}

/// Scenario 9: `warren cp` of one file up and down, against the socket bulk transfer, with the
/// CPU each side spends and the same files copied with no hub.
pub(crate) async fn copy(
    report: &mut Report,
    client: &warren::Client,
    cluster: &Cluster,
    scratch: &std::path::Path,
    bulk: f64,
    size: options::Size,
) -> anyhow::Result<()> {
    let bytes: u64 = size.pick(1 << 30, 256 << 20, 8 << 20);
    let runs = size.scale(3, 1);
    let c = copy::copy(client, cluster.hub_pid(), scratch, bytes, runs).await?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let grew = c.hub_rss_peak.saturating_sub(c.hub_rss_before);
    report.row(
        &format!("9 cp {} MiB up / down", bytes >> 20),
        format!("{:.2} / {:.2} GB/s", c.up / 1e9, c.down / 1e9),
        format!(
            "UDS bulk {:.2} GB/s: x{:.2} / x{:.2}",
            bulk / 1e9,
            c.up / bulk,
            c.down / bulk
        ),
        format!("hub RSS +{:.1} MiB at most", mib(grew)),
    );
    let cpu = |c: copy::Cpu| format!("{:.2} / {:.2} / {:.2}", c.client, c.hub, c.engine);
    report.row(
        "9 … CPU s/GiB client/hub/engine",
        format!("up {}", cpu(c.cpu_up)),
        format!("down {}", cpu(c.cpu_down)),
        String::new(),
    );
    report.row(
        "9 … the same files, no hub",
        format!("{:.2} GB/s", c.local / 1e9),
        "read+hash, then hash+write, one thread".into(),
        String::new(),
    );
    report.record(
        "copy",
        json!({"bytes": bytes, "runs": runs, "files_in": copy::place(scratch, bytes), "up_gb_per_s": c.up / 1e9, "down_gb_per_s": c.down / 1e9,
               "up_ratio_to_uds_bulk": c.up / bulk, "down_ratio_to_uds_bulk": c.down / bulk,
               "local_source_to_sink_gb_per_s": c.local / 1e9,
               "hub_rss_before_bytes": c.hub_rss_before, "hub_rss_peak_bytes": c.hub_rss_peak,
               "cpu_s_per_gib": {"up": {"client": c.cpu_up.client, "hub": c.cpu_up.hub, "engine": c.cpu_up.engine},
                                 "down": {"client": c.cpu_down.client, "hub": c.cpu_down.hub, "engine": c.cpu_down.engine}}}),
    );
    Ok(())
}

/// Scenario 9: the hub's memory with idle sessions, and at rest after many cells.
pub(crate) async fn session_memory(
    report: &mut Report,
    hub_flags: &[&str],
    size: options::Size,
) -> anyhow::Result<()> {
    let cells = size.scale(100_000, 10_000);
    let idle_sessions = size.pick(1000, 1000, 20);
    let (fresh, idle, after, rate) = sessions::hub_memory(hub_flags, idle_sessions, cells).await?;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    report.row(
        &format!("9 hub RSS, {idle_sessions} idle sessions"),
        mib(idle),
        format!("fresh hub {}", mib(fresh)),
        String::new(),
    );
    report.row(
        &format!("9 hub RSS after {cells} cells, at rest"),
        mib(after),
        format!("{rate:.0} cells/s on 10 simulated engines"),
        String::new(),
    );
    report.record(
        "sessions_memory",
        json!({"fresh_rss_bytes": fresh, "idle_sessions": idle_sessions, "rss_with_idle_sessions_bytes": idle,
               "cells": cells, "rss_after_cells_bytes": after, "simulated_cells_per_s": rate,
               "engines": "10 simulated (sessions and cells answered at once)"}),
    );
    Ok(())
}
