//! `warren engines slurm`: engines for this hub as one Slurm job.
//!
//! The job is one `sbatch` submission whose N tasks are the engines: one job step (`srun`)
//! of N tasks, each `exec`ing `warren-engine`, so that Slurm places them (`--nodes`,
//! `--ntasks-per-node`...), binds and accounts them as tasks, signals them itself, and knows
//! each one's task id (`SLURM_PROCID`). A job array would make N jobs that start, pend and
//! fail one by one, each needing its own forward; N steps would cost N step launches.
//!
//! A compute node reaches the hub the way every remote use does: through OpenSSH, from the
//! node back to the submit host. A second step (`--overlap`, one task per node) is the
//! node's **forward**: it fetches the hub's connection file over ssh (`cat`, so the key only
//! ever crosses ssh's stdout), writes it with mode 0600 into a directory of its own (mode
//! 0700, under `$TMPDIR` or `/tmp` on the node) pointing at a local socket, and keeps
//! `ssh -N -L local:hub` up (restarting it, and fetching the key again when a restarted hub
//! refuses it). The engines of that node use that file and socket. The job script Slurm
//! stores (`exec warren engines slurm-node batch ...`) and the job's environment hold paths
//! and the ssh command, never the key.
//!
//! Ending: Slurm ends a job (scancel, time limit) by sending SIGTERM to every process of it.
//! Each engine then says goodbye through the forward (the hub settles its tasks at once) and
//! exits; the forward's ssh ignores that SIGTERM, and the forward waits for its node's
//! engines to exit before it stops ssh and removes its directory. When the engines end on
//! their own (`warren engines stop`), the batch script tells the forwards to finish.
//!
//! The files: `submit` (the command a person runs: submit, report registrations, fail with
//! what to do), `sbatch` (Slurm's commands), `node` (what runs inside the job: the batch
//! script and the engine tasks), `forward` (a node's forward).

mod forward;
mod node;
mod sbatch;
mod submit;

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{HubArgs, SshArgs};
use crate::parse::{parse_label, parse_seconds};

pub(crate) use node::NodeArgs;

/// The label with an engine's Slurm job id.
pub(crate) const LABEL_JOB: &str = "slurm_job";
/// The label with an engine's task id in the job (`SLURM_PROCID`).
pub(crate) const LABEL_TASK: &str = "slurm_task";
/// The label with the name of an engine's node (`SLURMD_NODENAME`).
pub(crate) const LABEL_NODE: &str = "slurm_node";

/// `warren engines slurm`.
#[derive(Debug, Args)]
pub(crate) struct SlurmArgs {
    /// How many engines (the job's tasks)
    #[arg(short = 'n', long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) engines: u32,
    /// Slots per engine
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) slots: u32,
    /// A label for the engines, as key=value (repeatable); each also gets slurm_job,
    /// slurm_task and slurm_node
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// The Slurm partition (sbatch --partition)
    #[arg(long, short = 'p')]
    pub(crate) partition: Option<String>,
    /// The job's time limit, as sbatch takes it (minutes, or [D-]HH:MM:SS)
    #[arg(long, short = 't')]
    pub(crate) time: Option<String>,
    /// The account to charge (sbatch --account)
    #[arg(long, short = 'A')]
    pub(crate) account: Option<String>,
    /// How many nodes, or MIN-MAX (sbatch --nodes)
    #[arg(long, short = 'N')]
    pub(crate) nodes: Option<String>,
    /// Another sbatch option, as one word (repeatable), e.g. --sbatch-arg=--mem-per-cpu=2G
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) sbatch_args: Vec<String>,
    /// The job's name
    #[arg(long, default_value = "warren-engines")]
    pub(crate) name: String,
    /// The host the nodes ssh to for the hub: this machine, as the nodes name it
    /// [default: the submit host, Slurm's $SLURM_SUBMIT_HOST]
    #[arg(long, value_name = "HOST")]
    pub(crate) hub_host: Option<String>,
    /// Give up, and cancel the job, if its engines have not all registered within this long,
    /// pending time included (seconds, or 90s, 5m...)
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_seconds)]
    pub(crate) wait_timeout: Duration,
    /// Where the job's log goes, in a directory the nodes share with this machine
    /// [default: ~/.warren/slurm]
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,
    /// How to run warren-engine on the nodes [default: the warren-engine beside this warren,
    /// else warren-engine on PATH]
    #[arg(long, value_name = "COMMAND")]
    pub(crate) engine_command: Option<String>,
    /// How to run warren on the nodes [default: this warren's path]
    #[arg(long, value_name = "PATH")]
    pub(crate) warren_command: Option<PathBuf>,
    /// Cancel a job that `warren engines slurm` started (scancel), and wait for its engines
    /// to leave
    #[arg(long, value_name = "JOB")]
    pub(crate) cancel: Option<u64>,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
}

/// Runs `warren engines slurm`.
pub(crate) async fn run(hub: &HubArgs, args: &SlurmArgs) -> anyhow::Result<u8> {
    match args.cancel {
        Some(job) => submit::cancel(hub, job).await,
        None => submit::submit(hub, args).await,
    }
}

/// Runs a part of the job on a node (`warren engines slurm-node ROLE`).
pub(crate) async fn node(args: &NodeArgs) -> anyhow::Result<u8> {
    node::run(args).await
}
