//! What runs inside the job: `warren engines slurm-node ROLE`, a hidden command.
//!
//! - `batch`: the job script `exec`s it on the first node. It starts the forward step (one
//!   task per node, `--overlap`, `--kill-on-bad-exit`) and the engine step (the job's N
//!   tasks, `--overlap` too, so that a task can still `srun` inside the allocation), and
//!   waits. When the engines end, it asks the forwards to finish (SIGUSR1, which srun hands
//!   on to its tasks; SIGTERM would make srun kill the step). When the forwards fail, it
//!   exits with an error, and Slurm ends the engine step. A SIGTERM (Slurm ending the job)
//!   only makes it wait for both steps to end.
//! - `engine`: one engine task. It waits for its node's forward, notes its pid there (so the
//!   forward stays up until the engine is gone) and `exec`s `warren-engine` with the node's
//!   connection file and the Slurm labels: the engine is the task Slurm started, so Slurm
//!   signals and tracks it as it does any task.
//! - `forward`: see [`super::forward`].

use anyhow::{Context, bail};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{LABEL_JOB, LABEL_NODE, LABEL_TASK, sbatch};
use crate::cli::{NodeArgs, Role};
use crate::ssh::quote;

/// How long an engine task waits for its node's forward to come up.
const FORWARD_LIMIT: Duration = Duration::from_secs(120);
/// How long the batch script waits for the forwards to finish after the engines ended.
const FINISH_LIMIT: Duration = Duration::from_secs(60);
/// The node's connection file, in the node's directory.
pub(super) const CONNECTION_FILE: &str = "hub.json";
/// The local end of the node's forward, in the node's directory.
pub(super) const SOCKET: &str = "hub.sock";
/// The directory of the node's engines' pids, in the node's directory.
pub(super) const PIDS: &str = "engines";
/// The longest base directory for a node's directory: its socket's path must fit in 107
/// bytes.
const MAX_BASE: usize = 60;

impl NodeArgs {
    /// The job script Slurm stores: it `exec`s the batch part of `warren`.
    pub(crate) fn script(&self, warren: &Path, engines: u32) -> String {
        let mut line = format!(
            "exec {} engines slurm-node",
            quote(&warren.display().to_string())
        );
        for arg in self.to_args(Role::Batch) {
            line.push(' ');
            line.push_str(&quote(&arg));
        }
        format!(
            "#!/bin/sh\n\
             # Written by `warren engines slurm`: one ssh forward per node back to the hub, then\n\
             # {engines} warren-engine task(s). No key is in here: each node fetches it over ssh\n\
             # into a private directory of its own, removed when the job ends.\n\
             {line}\n"
        )
    }
}

/// What Slurm tells each task about where it runs.
pub(super) struct SlurmEnv {
    /// `SLURM_JOB_ID`.
    pub(super) job: String,
    /// `SLURMD_NODENAME`.
    pub(super) node: String,
}

impl SlurmEnv {
    /// Reads it, or says this must run inside a Slurm job.
    pub(super) fn read() -> anyhow::Result<Self> {
        Ok(Self {
            job: slurm_var("SLURM_JOB_ID")?,
            node: slurm_var("SLURMD_NODENAME")?,
        })
    }

    /// This node's directory for the job: under `$TMPDIR` (if short enough) or `/tmp`,
    /// named by the job and the tag, so that the node's forward and engines find it.
    pub(super) fn node_dir(&self, tag: &str) -> PathBuf {
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute() && dir.as_os_str().len() <= MAX_BASE)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        base.join(format!("warren-slurm-{}-{tag}", self.job))
    }
}

fn slurm_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| {
            format!("{name} is not set: `warren engines slurm-node` runs inside the job that `warren engines slurm` submits")
        })
}

/// The batch script: both steps, and the end of the job.
pub(super) async fn batch(args: &NodeArgs) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let nodes = slurm_var("SLURM_JOB_NUM_NODES").or_else(|_| slurm_var("SLURM_NNODES"))?;
    let warren = std::env::current_exe().context("cannot find this program's path")?;
    let srun = sbatch::find("srun")?;
    let step = |role: Role, options: &[String]| {
        let mut command = tokio::process::Command::new(&srun);
        command
            .args(options)
            .arg(&warren)
            .args(["engines", "slurm-node"])
            .args(args.to_args(role))
            .stdin(std::process::Stdio::null());
        command
    };
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let forward_options = [
        "--overlap".to_owned(),
        "--kill-on-bad-exit=1".into(),
        "--job-name=warren-forward".into(),
        format!("--nodes={nodes}"),
        format!("--ntasks={nodes}"),
        "--ntasks-per-node=1".into(),
    ];
    let mut forwards = step(Role::Forward, &forward_options)
        .spawn()
        .context("cannot start the forward step (srun)")?;
    let engine_options = [
        "--overlap".to_owned(),
        "--kill-on-bad-exit=0".into(),
        "--job-name=warren-engines".into(),
    ];
    let mut engines = step(Role::Engine, &engine_options)
        .spawn()
        .context("cannot start the engine step (srun)")?;
    // Set once Slurm is ending the job: it signals both steps itself.
    let mut stopping = false;
    let mut forwards_ended = false;
    loop {
        tokio::select! {
            status = forwards.wait(), if !forwards_ended => {
                let status = status?;
                forwards_ended = true;
                if !stopping {
                    // The engines cannot reach the hub any more: end the job (Slurm then
                    // stops the engine step).
                    bail!("the forward step ended ({status}) while the engines ran; the messages above say why");
                }
            }
            status = engines.wait() => {
                let status = status?;
                if !forwards_ended {
                    eprintln!("warren: the engines ended ({status}); stopping the forwards");
                    let pid = forwards.id().and_then(|p| rustix::process::Pid::from_raw(p as i32));
                    if let Some(pid) = pid {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::USR1);
                    }
                    if tokio::time::timeout(FINISH_LIMIT, forwards.wait()).await.is_err() {
                        eprintln!("warren: the forwards did not finish within {FINISH_LIMIT:?}");
                    }
                }
                return Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8));
            }
            _ = terminate.recv() => stopping = true,
            _ = interrupt.recv() => stopping = true,
            _ = hangup.recv() => stopping = true,
        }
    }
}

/// One engine task: wait for the node's forward, then become `warren-engine`.
pub(super) async fn engine(args: &NodeArgs) -> anyhow::Result<u8> {
    let slurm = SlurmEnv::read()?;
    let task = slurm_var("SLURM_PROCID")?;
    let dir = slurm.node_dir(&args.tag);
    let connection = dir.join(CONNECTION_FILE);
    let deadline = Instant::now() + FORWARD_LIMIT;
    while !connection.exists() {
        if Instant::now() > deadline {
            bail!(
                "node {}: its forward to the hub did not come up within {FORWARD_LIMIT:?} (its messages are in this log)",
                slurm.node
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warren_proto::os::private_dir::check(&dir)?;
    // The pid stays the engine's through exec: the forward waits until it is gone.
    let pid_file = dir.join(PIDS).join(std::process::id().to_string());
    std::fs::write(&pid_file, b"")
        .with_context(|| format!("cannot write {}", pid_file.display()))?;

    let mut words = args.engine_command.split_whitespace();
    let program = words
        .next()
        .context("--engine-command is empty; give the command that runs warren-engine")?;
    let mut command = std::process::Command::new(program);
    command
        .args(words)
        .arg("--connection-file")
        .arg(&connection)
        .arg("--spill-dir")
        .arg(&dir)
        .args(["--slots", &args.slots.to_string()])
        // The forward may take a moment to come back after a hub restart.
        .args(["--max-backoff-ms", "1000"]);
    for label in &args.labels {
        command.args(["--label", label]);
    }
    command.args([
        "--label",
        &format!("{LABEL_JOB}={}", slurm.job),
        "--label",
        &format!("{LABEL_TASK}={task}"),
        "--label",
        &format!("{LABEL_NODE}={}", slurm.node),
    ]);
    let err = command.exec();
    let _ = std::fs::remove_file(&pid_file);
    bail!("node {}: cannot run {program}: {err}", slurm.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_execs_warren_with_quoted_words_and_nothing_secret() {
        let script = NodeArgs::example().script(Path::new("/opt/warren/bin/warren"), 4);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        let last = script.lines().last().expect("a line");
        assert!(
            last.starts_with("exec '/opt/warren/bin/warren' engines slurm-node 'batch' "),
            "{last}"
        );
        assert!(last.contains("'--hub-host' 'login 1'"), "{last}");
        assert!(last.contains("'it'\\''s=odd'"), "{last}");
        assert!(!script.to_lowercase().contains("\"key\""), "{script}");
    }
}
