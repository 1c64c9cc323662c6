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

use crate::cli::{HubArgs, NodeArgs, Role, SlurmArgs};

/// The label with an engine's Slurm job id.
pub(crate) const LABEL_JOB: &str = "slurm_job";
/// The label with an engine's task id in the job (`SLURM_PROCID`).
pub(crate) const LABEL_TASK: &str = "slurm_task";
/// The label with the name of an engine's node (`SLURMD_NODENAME`).
pub(crate) const LABEL_NODE: &str = "slurm_node";

/// Runs `warren engines slurm`.
pub(crate) async fn run(hub: &HubArgs, args: &SlurmArgs) -> anyhow::Result<u8> {
    match args.cancel {
        Some(job) => submit::cancel(hub, job).await,
        None => submit::submit(hub, args).await,
    }
}

/// Runs a part of the job on a node (`warren engines slurm-node ROLE`).
pub(crate) async fn node(args: &NodeArgs) -> anyhow::Result<u8> {
    match args.role {
        Role::Batch => node::batch(args).await,
        Role::Forward => forward::run(args).await,
        Role::Engine => node::engine(args).await,
    }
}
