//! `warren-bench`: warren's benchmarks, each next to its baseline measured in the same run.
//!
//! Starts the release `warren-hub` and `warren-engine` binaries on sockets in a temp dir,
//! runs every scenario, prints a table of medians and tails with the baselines and targets,
//! and writes it all as JSON. Run it with `cargo run --release -p warren-bench`.

mod after;
mod baseline;
mod batch;
mod charts;
mod clients;
mod compare;
mod copy;
mod growth;
mod interactive;
mod liveness;
mod load;
mod options;
mod procs;
mod scenarios;
mod sections;
mod sessions;
mod signing;
mod sim;
mod stats;

use clap::Parser;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use warren::Job;

use crate::procs::{Cluster, rss};
use crate::stats::{Samples, ms, ratio_of, us};

/// Tasks per SubmitBatch call in scenario 2's batched row.
const THROUGHPUT_BATCH: usize = 1000;

/// Measure warren against raw sockets, process spawning and plain tonic, in one run.
#[derive(Debug, Parser)]
#[command(name = "warren-bench")]
struct Args {
    /// Where to write the results as JSON
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// Fewer runs of each scenario, for a quick look (the figures are noisier)
    #[arg(long)]
    quick: bool,
    /// Only the scenarios whose names contain one of these words
    #[arg(long = "only", value_name = "WORD")]
    only: Vec<String>,
    /// Pass this flag to every hub the bench starts, e.g. `--hub-arg=--db=:memory:` (or
    /// `--hub-arg --db --hub-arg :memory:`)
    #[arg(long = "hub-arg", value_name = "FLAG", allow_hyphen_values = true)]
    hub_args: Vec<String>,
    /// Internal: serve the socket baselines' other end on this path
    #[arg(long, hide = true)]
    serve_socket: Option<PathBuf>,
    #[command(flatten)]
    extra: options::Extra,
}

/// The results so far: table rows and the JSON document.
struct Report {
    rows: Vec<[String; 4]>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(&mut self, name: &str, figure: String, versus: String, target: String) {
        println!("{name:<34} {figure:<30} {versus:<34} {target}");
        self.rows.push([name.into(), figure, versus, target]);
    }

    fn record(&mut self, name: &str, value: Value) {
        self.json.insert(name.into(), value);
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.serve_socket {
        return baseline::serve(path);
    }
    if let Some(spec) = &args.extra.load_client {
        return clients::client_main(spec);
    }
    let (json_path, extra) = (args.json.clone(), args.extra.clone());
    if extra.from.is_none() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(args))?;
    }
    after::after_run(&json_path, &extra)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let wanted =
        |name: &str| args.only.is_empty() || args.only.iter().any(|w| name.contains(w.as_str()));
    let size = options::Size::new(args.quick, args.extra.smoke);
    let scale = |full: usize, quick: usize| size.scale(full, quick);
    let mut report = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    println!(
        "{:<34} {:<30} {:<34} target",
        "scenario", "warren", "baseline (same run)"
    );
    let scratch = tempfile::Builder::new().prefix("warren-bench-").tempdir()?;
    let mut hub_flags = vec![
        "--max-queued",
        "1000000",
        "--max-queued-per-client",
        "1000000",
        "--replay-capacity",
        "4000000",
    ];
    hub_flags.extend(args.hub_args.iter().map(String::as_str));

    // Baselines.
    let peer = baseline::SocketPeer::start(scratch.path())?;
    let ping = peer.ping_pong(scale(20_000, 2_000))?;
    let bulk = peer.bulk(size.pick(2 << 30, 1 << 30, 16 << 20))?;
    let spawn = baseline::spawn_true(scale(1_000, 200))?;
    let rested = baseline::spawn_true_after(scale(1_000, 200), baseline::SPAWN_IDLE)?;
    // The stream scenario's bytes, through the baseline chain of `cat`s too.
    let stream_bytes: u64 = size.pick(1 << 30, 256 << 20, 8 << 20);
    let chain = baseline::cat_chain(stream_bytes, size.pick(3, 3, 1))?;
    let spawned = baseline::spawn_capacity(scale(5_000, 1_000))?;
    let capacity = spawned.tasks_per_s;
    report.row(
        "baseline: UDS ping-pong 64 B",
        format!("p50 {} µs  p99 {} µs", us(ping.p50()), us(ping.p99())),
        String::new(),
        String::new(),
    );
    report.row(
        "baseline: UDS bulk, 64 KiB writes",
        format!("{:.2} GB/s", bulk / 1e9),
        String::new(),
        String::new(),
    );
    report.row(
        "baseline: posix_spawn /bin/true",
        format!("p50 {} ms  p99 {} ms", ms(spawn.p50()), ms(spawn.p99())),
        String::new(),
        String::new(),
    );
    report.row(
        "baseline: posix_spawn after 1 ms idle",
        format!("p50 {} ms  p99 {} ms", ms(rested.p50()), ms(rested.p99())),
        format!(
            "×{:.2} of the hot loop's p50",
            ratio_of(rested.p50(), spawn.p50())
        ),
        String::new(),
    );
    report.row(
        "baseline: spawn capacity, 2 loops",
        format!("{capacity:.0} tasks/s"),
        format!(
            "CPU/task: spawner {} µs, /bin/true {} µs",
            us(spawned.spawner_cpu_per_task),
            us(spawned.child_cpu_per_task)
        ),
        String::new(),
    );
    report.row(
        &format!("baseline: head|cat|cat|cat {} MiB", stream_bytes >> 20),
        format!("{:.2} GB/s", chain.bytes_per_s / 1e9),
        format!("CPU {:.2} s/GiB (all 5 processes)", chain.cpu_s_per_gib),
        String::new(),
    );
    report.record(
        "baselines",
        json!({
            "uds_ping_pong_64b": {"p50_us": us(ping.p50()), "p99_us": us(ping.p99()), "runs": ping.len()},
            "uds_bulk_64kib_writes": {"gb_per_s": bulk / 1e9},
            "spawn_true": {"p50_ms": ms(spawn.p50()), "p99_ms": ms(spawn.p99()), "runs": spawn.len()},
            "spawn_true_after_idle": {"p50_ms": ms(rested.p50()), "p99_ms": ms(rested.p99()), "runs": rested.len(),
                                      "idle_ms": ms(baseline::SPAWN_IDLE)},
            "spawn_capacity_2_loops": {"tasks_per_s": capacity, "per_loop": scale(5_000, 1_000),
                                       "spawner_cpu_us_per_task": us(spawned.spawner_cpu_per_task),
                                       "child_cpu_us_per_task": us(spawned.child_cpu_per_task)},
            "cat_chain_3": {"bytes": stream_bytes, "gb_per_s": chain.bytes_per_s / 1e9,
                            "cpu_s_per_gib": chain.cpu_s_per_gib,
                            "command": "head -c BYTES /dev/zero | cat | cat | cat > /dev/null"},
        }),
    );

    let mut cluster = Cluster::hub(&hub_flags).await?;
    cluster.add_engines(2, &["--slots", "4"]).await?;
    let client = cluster.client().await?;
    let unsigned = baseline::unsigned_unary(&cluster.socket(), scale(5_000, 1_000)).await?;
    report.row(
        "baseline: tonic unary, unsigned",
        format!(
            "p50 {} µs  p99 {} µs",
            us(unsigned.p50()),
            us(unsigned.p99())
        ),
        "(health check on the hub)".into(),
        String::new(),
    );
    report.record(
        "baseline_tonic_unary_unsigned",
        json!({"p50_us": us(unsigned.p50()), "p99_us": us(unsigned.p99()), "runs": unsigned.len()}),
    );
    let idle_rss = rss(cluster.hub_pid());

    if wanted("roundtrip") {
        let (rt, parts) = scenarios::round_trip(&client, scale(2_000, 300)).await?;
        let above = rt.p50().saturating_sub(spawn.p50());
        let ratio = ratio_of(rt.p50(), spawn.p50());
        let ratio_rested = ratio_of(rt.p50(), rested.p50());
        report.row(
            "1 round trip of `true`",
            format!("p50 {} ms  p99 {} ms", ms(rt.p50()), ms(rt.p99())),
            format!(
                "spawn p50 {} ms: ×{ratio:.2}, +{} ms",
                ms(spawn.p50()),
                ms(above)
            ),
            format!("≤1.6×: {}", verdict(ratio <= 1.6)),
        );
        report.row(
            "1 … against a spawn from rest",
            format!("×{ratio_rested:.2}"),
            format!("after-idle spawn p50 {} ms", ms(rested.p50())),
            String::new(),
        );
        report.row(
            "1 … where it goes (p50s)",
            format!(
                "{} → hub, {} → engine, {} process",
                us(parts.to_hub),
                us(parts.to_engine),
                us(parts.run)
            ),
            format!(
                "{} → hub, {} → client (µs)",
                us(parts.back_to_hub),
                us(parts.to_client)
            ),
            String::new(),
        );
        report.record(
            "roundtrip_true",
            json!({"p50_ms": ms(rt.p50()), "p99_ms": ms(rt.p99()), "runs": rt.len(),
                   "above_spawn_p50_ms": ms(above), "ratio_to_spawn_p50": ratio, "target_ratio": 1.6,
                   "ratio_to_spawn_after_idle_p50": ratio_rested,
                   "p50_parts_us": {"client_to_hub": us(parts.to_hub), "hub_to_engine_spawn": us(parts.to_engine),
                                    "process": us(parts.run), "engine_to_hub": us(parts.back_to_hub),
                                    "hub_commit_to_client": us(parts.to_client)}}),
        );
    }

    if wanted("throughput") {
        let tasks = scale(20_000, 4_000);
        let t =
            scenarios::throughput(&cluster, &client, Job::argv(["/bin/true"]), tasks, 64).await?;
        let (ratio, against) = t.against(capacity);
        report.row(
            &format!("2 throughput, {tasks} `true` tasks"),
            format!("{:.0} tasks/s", t.tasks_per_s),
            against,
            format!("≥0.75×: {}", verdict(ratio >= 0.75)),
        );
        let [hub, engines, run, bench] = t.cpu_per_task;
        report.row(
            "2 … CPU per task (µs)",
            format!(
                "hub {}, engines {}, client {}",
                us(hub),
                us(engines),
                us(bench)
            ),
            format!(
                "/bin/true {} (spawn loop: {} + {})",
                us(run),
                us(spawned.spawner_cpu_per_task),
                us(spawned.child_cpu_per_task)
            ),
            String::new(),
        );
        let batched = scenarios::throughput_batched(
            &cluster,
            &client,
            Job::argv(["/bin/true"]),
            tasks,
            THROUGHPUT_BATCH,
        )
        .await?;
        let (batched_ratio, against) = batched.against(capacity);
        report.row(
            &format!("2 … in SubmitBatch calls of {THROUGHPUT_BATCH}"),
            format!("{:.0} tasks/s", batched.tasks_per_s),
            against,
            String::new(),
        );
        report.record(
            "throughput_true_batched",
            json!({"tasks": tasks, "batch": THROUGHPUT_BATCH, "tasks_per_s": batched.tasks_per_s,
                   "seconds": batched.elapsed.as_secs_f64(), "ratio_to_spawn_capacity": batched_ratio,
                   "hub_cpu_us_per_task": us(batched.hub_cpu_per_task())}),
        );
        report.record(
            "throughput_true",
            json!({"tasks": tasks, "tasks_per_s": t.tasks_per_s, "seconds": t.elapsed.as_secs_f64(),
                   "spawn_capacity_tasks_per_s": capacity, "ratio_to_spawn_capacity": ratio, "target_ratio": 0.75,
                   "hub_cpu_us_per_task": us(t.hub_cpu_per_task()), "engines": 2, "slots_per_engine": 4,
                   "cpu_us_per_task": {"hub": us(hub), "engines": us(engines), "tasks": us(run), "client": us(bench)}}),
        );
    }

    if wanted("fanin") {
        let width = scale(9_999, 1_999);
        let mut gaps = Vec::new();
        for run in 0..scale(3, 1) {
            gaps.push(batch::fan_in(&client, width, run).await?);
        }
        let fan = Samples::new(gaps);
        let chain = batch::chain(&client, scale(200, 50)).await?;
        let worst = fan.quantile(1.0);
        report.row(
            &format!("9 fan-in: 1 task after {width}"),
            format!(
                "last end → start p50 {} ms, max {} ms",
                ms(fan.p50()),
                ms(worst)
            ),
            format!("2-task chain p50 {} ms", ms(chain.p50())),
            format!("2 ms: {}", verdict(worst <= Duration::from_millis(2))),
        );
        report.record(
            "fan_in",
            json!({"dependencies": width, "runs": fan.len(), "last_end_to_start_p50_ms": ms(fan.p50()),
                   "last_end_to_start_max_ms": ms(worst), "target_ms": 2.0,
                   "chain_of_2_p50_ms": ms(chain.p50()), "chain_of_2_p99_ms": ms(chain.p99()),
                   "chain_runs": chain.len()}),
        );
    }

    if wanted("map") {
        let tasks = scale(10_000, 2_000);
        let submit =
            scenarios::throughput(&cluster, &client, Job::argv(["/bin/true"]), tasks, 64).await?;
        let run = batch::map(&cluster, tasks, 64).await?;
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
        report.row(
            &format!("10 map of {tasks} `true`, -j 64"),
            format!("{:.0} tasks/s", run.tasks_per_s),
            format!("Submit per task, 64 in flight: {:.0}/s", submit.tasks_per_s),
            String::new(),
        );
        report.row(
            "10 … peak RSS during the map",
            format!("client {}, hub {}", mib(run.client_rss), mib(run.hub_rss)),
            format!("hub idle {}", mib(idle_rss)),
            String::new(),
        );
        report.record(
            "map_true",
            json!({"tasks": tasks, "jobs": 64, "tasks_per_s": run.tasks_per_s,
                   "submit_per_task_tasks_per_s": submit.tasks_per_s,
                   "client_peak_rss_bytes": run.client_rss, "hub_peak_rss_bytes": run.hub_rss}),
        );
    }

    if wanted("stream") {
        let bytes = stream_bytes;
        let before = rss(cluster.hub_pid());
        let cpu = procs::CpuSplit::now(&cluster);
        let fast = scenarios::stream(&client, bytes, false).await?;
        let [hub, engines, task, own] = procs::CpuSplit::now(&cluster).per_gib_since(&cpu, bytes);
        let with_slow = scenarios::stream(&client, bytes, true).await?;
        let after = rss(cluster.hub_pid());
        let ratio = fast / chain.bytes_per_s;
        report.row(
            &format!("3 stream {} MiB of stdout", bytes >> 20),
            format!(
                "{:.2} GB/s; slow follower {:.2}",
                fast / 1e9,
                with_slow / 1e9
            ),
            format!("3×cat {:.2} GB/s: ×{ratio:.2}", chain.bytes_per_s / 1e9),
            format!("≥0.8×: {}", verdict(ratio >= 0.8)),
        );
        report.row(
            "3 … CPU s/GiB, each process",
            format!("hub {hub:.2}, engine {engines:.2}, client {own:.2}"),
            format!(
                "task {task:.2}; cat chain {:.2} in all",
                chain.cpu_s_per_gib
            ),
            String::new(),
        );
        report.record(
            "stream",
            json!({"bytes": bytes, "gb_per_s": fast / 1e9, "with_slow_follower_gb_per_s": with_slow / 1e9,
                   "cat_chain_gb_per_s": chain.bytes_per_s / 1e9, "ratio_to_cat_chain": ratio, "target_ratio": 0.8,
                   "cpu_s_per_gib": {"hub": hub, "engines": engines, "task": task, "client": own,
                                     "cat_chain_all": chain.cpu_s_per_gib},
                   "ratio_to_uds_bulk": fast / bulk, "hub_rss_before_bytes": before, "hub_rss_after_bytes": after}),
        );
    }
    if wanted("session") {
        sections::sessions(&mut report, &cluster, &client, &unsigned, &ping, &scale).await?;
    }
    if wanted("interactive") {
        sections::interactive(&mut report, &cluster, scratch.path(), &ping, bulk, size)?;
    }
    if wanted("copy") {
        sections::copy(&mut report, &client, &cluster, scratch.path(), bulk, size).await?;
    }
    drop(client);
    cluster.stop().await;

    if wanted("fanout") {
        let mut wide = Cluster::hub(&hub_flags).await?;
        let n = scale(64, 64);
        wide.add_engines(n, &[]).await?;
        let client = wide.client().await?;
        let fan = scenarios::fan_out(&client, n, scale(10, 3)).await?;
        report.row(
            &format!("4 fan-out to {n} engines"),
            format!("p50 {} ms  p99 {} ms", ms(fan.p50()), ms(fan.p99())),
            format!("{n} × spawn p50 = {} ms", ms(spawn.p50() * n as u32)),
            String::new(),
        );
        report.record(
            "fanout_64",
            json!({"p50_ms": ms(fan.p50()), "p99_ms": ms(fan.p99()), "runs": fan.len(), "engines": n}),
        );
        drop(client);
        wide.stop().await;
    }

    if wanted("hmac") {
        let signing::Split {
            signed,
            carried,
            plain,
        } = signing::compare(scratch.path(), scale(20_000, 2_000)).await?;
        let over_plain = |s: &Samples| s.p50().as_secs_f64() / plain.p50().as_secs_f64() - 1.0;
        let overhead = over_plain(&signed);
        let carry = over_plain(&carried);
        let check = overhead - carry;
        report.row(
            "5 signed unary Control call",
            format!("p50 {} µs  p99 {} µs", us(signed.p50()), us(signed.p99())),
            format!(
                "unsigned p50 {} µs: {:+.1}%",
                us(plain.p50()),
                overhead * 100.0
            ),
            format!("≤5%: {}", verdict(overhead <= 0.05)),
        );
        report.row(
            "5 where the signature's cost goes",
            format!(
                "signing + carrying {:+.1}%, the hub's check {:+.1}%",
                carry * 100.0,
                check * 100.0
            ),
            format!("carried, unchecked p50 {} µs", us(carried.p50())),
            String::new(),
        );
        report.record(
            "hmac_layer",
            json!({"signed_p50_us": us(signed.p50()), "unsigned_p50_us": us(plain.p50()),
                   "carried_unchecked_p50_us": us(carried.p50()),
                   "carry_percent": carry * 100.0, "check_percent": check * 100.0,
                   "signed_p99_us": us(signed.p99()), "unsigned_p99_us": us(plain.p99()),
                   "overhead_percent": overhead * 100.0, "runs": signed.len(),
                   "per_call_verification": "cargo bench -p warren-bench --bench signatures"}),
        );
    }

    if wanted("scale") {
        let engines = scale(1000, 1000);
        sections::scale(
            &mut report,
            &hub_flags,
            idle_rss,
            scale(100_000, 10_000),
            engines,
        )
        .await?;
    }

    if wanted("load") {
        load::scenario(&mut report, &hub_flags, size).await?;
    }

    if wanted("growth") {
        growth::scenario(&mut report, &hub_flags, size).await?;
    }

    if wanted("session") {
        sections::session_memory(&mut report, &hub_flags, size).await?;
    }

    if wanted("cluster") {
        let starts = scenarios::cluster_start(scratch.path(), scale(10, 3)).await?;
        report.row(
            "7 cluster start -n 2",
            format!("p50 {} ms  p99 {} ms", ms(starts.p50()), ms(starts.p99())),
            format!("2 × spawn p50 = {} ms", ms(spawn.p50() * 2)),
            format!(
                "0.2 s: {}",
                verdict(starts.p50() <= Duration::from_millis(200))
            ),
        );
        report.record(
            "cluster_start_2",
            json!({"p50_ms": ms(starts.p50()), "p99_ms": ms(starts.p99()), "runs": starts.len()}),
        );
    }

    if wanted("liveness") {
        let dead = liveness::engine_declared_dead(scale(10, 3)).await?;
        report.row(
            "8 SIGSTOPped engine written off",
            format!(
                "p50 {} ms  max {} ms",
                ms(dead.p50()),
                ms(dead.quantile(1.0))
            ),
            "--engine-timeout-ms 1000".into(),
            format!(
                "< 4 s: {}",
                verdict(dead.quantile(1.0) < Duration::from_secs(4))
            ),
        );
        let silent = liveness::follower_of_a_frozen_hub(scale(5, 2)).await?;
        report.row(
            "8 follower of a frozen hub ends",
            format!(
                "p50 {} ms  max {} ms",
                ms(silent.p50()),
                ms(silent.quantile(1.0))
            ),
            "--heartbeat-ms 100".into(),
            format!(
                "< 10 s: {}",
                verdict(silent.quantile(1.0) < Duration::from_secs(10))
            ),
        );
        report.record(
            "liveness",
            json!({"engine_written_off": {"p50_ms": ms(dead.p50()), "max_ms": ms(dead.quantile(1.0)),
                                          "runs": dead.len(), "hub_flags": liveness::ENGINE_TIMEOUT,
                                          "target_max_ms": 4000},
                   "follower_of_frozen_hub": {"p50_ms": ms(silent.p50()), "max_ms": ms(silent.quantile(1.0)),
                                              "runs": silent.len(), "hub_flags": liveness::FOLLOW_HEARTBEAT,
                                              "target_max_ms": 10000}}),
        );
    }

    let document = json!({
        "system": "warren",
        "version": warren_proto::VERSION,
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get())},
        "quick": args.quick, "smoke": args.extra.smoke,
        "results": Value::Object(report.json.clone()),
        "table": report.rows,
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&document)? + "\n")?;
    println!("\nwrote {}", args.json.display());
    Ok(())
}
