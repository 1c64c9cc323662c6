//! The command a person runs: submit the job, say each engine as it registers, and return
//! once all have; or cancel the job and say what to do when it cannot work (no sbatch, Slurm
//! refusing the job, a job pending too long, nodes that cannot ssh back, a job that ended).

use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warren::Client;
use warren::proto::EngineInfo;

use super::sbatch::{self, JobInfo};
use super::{LABEL_JOB, LABEL_NODE, LABEL_TASK};
use crate::cli::{HubArgs, NodeArgs, Role, SlurmArgs};
use crate::{connect, connection_info};

/// How often the hub is asked for the job's engines.
const ENGINE_POLL: Duration = Duration::from_millis(100);
/// How often Slurm is asked for the job's state.
const JOB_POLL: Duration = Duration::from_millis(500);
/// How long `--cancel` waits for the job's engines to leave.
const CANCEL_LIMIT: Duration = Duration::from_secs(30);
/// Questions to Slurm in a row that may fail before the command gives up.
const UNANSWERED_LIMIT: u32 = 20;
/// The lines of the job's log shown when it failed.
const LOG_TAIL: usize = 15;

/// `warren engines slurm -n N ...`.
pub(super) async fn submit(hub: &HubArgs, args: &SlurmArgs) -> anyhow::Result<u8> {
    let sbatch = sbatch::find("sbatch")?;
    let info = connection_info(hub)?;
    let locator = hub.locator();
    // What the nodes fetch over ssh: the key file if one was given, else the connection file.
    let (key_source, bare_key) = match (&locator.key_file, locator.connection_file()) {
        (Some(key), _) => (absolute(key)?, true),
        (None, Some(file)) => (absolute(&file)?, false),
        (None, None) => bail!("no connection file or key file names this hub's key"),
    };
    let client = connect(hub).await?;
    let warren = match &args.warren_command {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    let node = NodeArgs {
        role: Role::Batch,
        tag: tag(),
        hub_host: args.hub_host.clone(),
        hub_socket: absolute(&info.socket)?,
        key_source,
        bare_key,
        ssh: args.ssh.command().to_owned(),
        slots: args.slots,
        labels: args
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        engine_command: args
            .engine_command
            .clone()
            .unwrap_or_else(|| default_engine(&warren)),
    };
    let log_dir = match &args.log_dir {
        Some(dir) => absolute(dir)?,
        None => home()?.join(".warren").join("slurm"),
    };
    // The log holds no secret, but it is nobody else's business: a new directory is 0700.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&log_dir)
        .with_context(|| format!("cannot create the log directory {}", log_dir.display()))?;
    let options = sbatch_options(args, &log_dir);
    let job = sbatch::submit(&sbatch, &options, &node.script(&warren, args.engines)).await?;
    println!(
        "warren: submitted Slurm job {job} for {} engine(s); cancel it with `{} engines slurm --cancel {job}`",
        args.engines,
        hub.hint()
    );
    // From here on every way out but success cancels the job.
    match watch(&client, job, args).await {
        Ok(0) => Ok(0),
        outcome => {
            if let Err(err) = sbatch::cancel(job).await {
                eprintln!("warren: {err:#}");
            }
            outcome
        }
    }
}

/// The sbatch options for the job.
fn sbatch_options(args: &SlurmArgs, log_dir: &Path) -> Vec<String> {
    let file_name: String = args
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let log = log_dir.join(format!("{file_name}-%j.log"));
    let mut options = vec![
        format!("--job-name={}", args.name),
        format!("--ntasks={}", args.engines),
        format!("--output={}", log.display()),
    ];
    let optional = [
        ("--nodes", &args.nodes),
        ("--partition", &args.partition),
        ("--time", &args.time),
        ("--account", &args.account),
    ];
    for (flag, value) in optional {
        if let Some(value) = value {
            options.push(format!("{flag}={value}"));
        }
    }
    // Last, so that they can override.
    options.extend(args.sbatch_args.iter().cloned());
    options
}

/// Reports the job's engines as they register; 0 once all have, an error (after which the
/// job is cancelled) when they cannot.
async fn watch(client: &Client, job: u64, args: &SlurmArgs) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let start = Instant::now();
    let deadline = start + args.wait_timeout;
    let wanted = args.engines as usize;
    let mut seen = BTreeSet::new();
    let mut engine_tick = tokio::time::interval(ENGINE_POLL);
    let mut job_tick = tokio::time::interval(JOB_POLL);
    let mut running = false;
    let mut unanswered = 0;
    let mut last: Option<JobInfo> = None;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                eprintln!("warren: interrupted; cancelling job {job}");
                return Ok(130);
            }
            _ = terminate.recv() => {
                eprintln!("warren: terminated; cancelling job {job}");
                return Ok(143);
            }
            _ = engine_tick.tick() => {
                let engines = client.engines().await.context("lost the hub while waiting for the engines")?;
                for engine in of_job(&engines, job) {
                    if seen.insert(engine.id) {
                        println!("warren: engine {} registered: {}", engine.id, describe(engine));
                    }
                }
                if seen.len() >= wanted {
                    println!(
                        "warren: {wanted} engine(s) of Slurm job {job} registered in {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                    return Ok(0);
                }
            }
            _ = job_tick.tick() => {
                // A controller too busy to answer now and then is no reason to give up.
                let info = match sbatch::show(job).await {
                    Ok(info) => {
                        unanswered = 0;
                        info
                    }
                    Err(err) => {
                        unanswered += 1;
                        if unanswered >= UNANSWERED_LIMIT {
                            return Err(err.context("Slurm's controller stopped answering"));
                        }
                        continue;
                    }
                };
                let Some(info) = info else {
                    bail!("Slurm no longer knows job {job}; it ended before its engines registered");
                };
                if info.ended() {
                    bail!("{}", failure(job, &info, &format!(
                        "job {job} ended ({}) before its engines registered ({} of {wanted})",
                        info.state(), seen.len()
                    )));
                }
                if !running && !info.pending() {
                    running = true;
                    println!(
                        "warren: job {job} is running on {}",
                        info.get("NodeList").unwrap_or("its nodes")
                    );
                }
                last = Some(info);
            }
        }
        if Instant::now() > deadline {
            let timeout = humantime(args.wait_timeout);
            let info = last.unwrap_or_default();
            if info.pending() {
                bail!(
                    "job {job} was still pending after {timeout} (Slurm's reason: {}); cancelled it. Ask for fewer resources (-n, --nodes, --time) or another --partition, or wait longer with --wait-timeout",
                    info.get("Reason").unwrap_or("none given")
                );
            }
            bail!(
                "{}",
                failure(
                    job,
                    &info,
                    &format!(
                        "only {} of {wanted} engines of job {job} registered within {timeout}; cancelled the job",
                        seen.len()
                    )
                )
            );
        }
    }
}

/// The job's engines.
fn of_job(engines: &[EngineInfo], job: u64) -> impl Iterator<Item = &EngineInfo> {
    let job = job.to_string();
    engines
        .iter()
        .filter(move |e| e.labels.get(LABEL_JOB) == Some(&job))
}

/// `task 3 on node n12 (pid 4242)`.
fn describe(engine: &EngineInfo) -> String {
    let label = |key| engine.labels.get(key).map_or("?", String::as_str);
    format!(
        "task {} on node {} (pid {})",
        label(LABEL_TASK),
        label(LABEL_NODE),
        engine.pid
    )
}

/// What went wrong, with the end of the job's log, which holds what the nodes said.
fn failure(job: u64, info: &JobInfo, what: &str) -> String {
    let Some(log) = info.get("StdOut").map(PathBuf::from) else {
        return format!("{what}; see the job's output (scontrol show job {job})");
    };
    match std::fs::read_to_string(&log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ");
            format!("{what}. The end of its log, {}:\n  {tail}", log.display())
        }
        Err(err) => format!(
            "{what}; its log {} cannot be read here ({err}): is that directory shared with the nodes?",
            log.display()
        ),
    }
}

/// `warren engines slurm --cancel JOB`: scancel, then wait for its engines to leave the hub.
pub(super) async fn cancel(hub: &HubArgs, job: u64) -> anyhow::Result<u8> {
    if sbatch::show(job).await?.is_none() {
        bail!("Slurm knows no job {job} (a job that ended a while ago is forgotten)");
    }
    sbatch::cancel(job).await?;
    println!("warren: cancelled Slurm job {job}");
    let client = match connect(hub).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("warren: cannot see its engines leave: {err:#}");
            return Ok(0);
        }
    };
    let deadline = Instant::now() + CANCEL_LIMIT;
    let mut before = None;
    loop {
        let left = of_job(&client.engines().await?, job).count();
        let before = *before.get_or_insert(left);
        if left == 0 {
            if before > 0 {
                println!("warren: its {before} engine(s) left");
            }
            return Ok(0);
        }
        if Instant::now() > deadline {
            bail!(
                "{left} engine(s) of job {job} are still registered {CANCEL_LIMIT:?} after scancel"
            );
        }
        tokio::time::sleep(ENGINE_POLL).await;
    }
}

/// A name for this job's directories on the nodes, unlike any other job's.
fn tag() -> String {
    let mut bytes = [0u8; 6];
    if getrandom::fill(&mut bytes).is_err() {
        let now = warren_proto::now_us().to_le_bytes();
        bytes.copy_from_slice(&now[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The warren-engine beside this warren, else the one on PATH.
fn default_engine(warren: &Path) -> String {
    let beside = warren.with_file_name("warren-engine");
    if beside.is_file() {
        beside.display().to_string()
    } else {
        "warren-engine".to_owned()
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .context("HOME is not set; give the job's log directory with --log-dir")
}

/// `90 s`, `5 min`, as people read it.
fn humantime(limit: Duration) -> String {
    let secs = limit.as_secs_f64();
    if secs >= 120.0 && limit.as_secs().is_multiple_of(60) {
        format!("{} min", limit.as_secs() / 60)
    } else {
        format!("{secs:.0} s")
    }
}
