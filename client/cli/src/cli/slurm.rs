//! The arguments of `warren engines slurm`, and of the hidden `warren engines slurm-node ROLE`
//! that runs the parts of its job on the nodes (with [`NodeArgs::to_args`], the way back to
//! words for the job script and its steps).

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use super::SshArgs;
use super::parse::{parse_label, parse_seconds};

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

/// A part of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// The batch script: start the forward step and the engine step, and wait.
    Batch,
    /// One node's forward to the hub.
    Forward,
    /// One engine task.
    Engine,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Forward => "forward",
            Self::Engine => "engine",
        }
    }
}

/// `warren engines slurm-node ROLE`: everything the parts of the job need, none of it secret.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// Which part of the job to run
    #[arg(value_enum)]
    pub(crate) role: Role,
    /// Names this job's directories on the nodes
    #[arg(long)]
    pub(crate) tag: String,
    /// The host to ssh to for the hub [default: $SLURM_SUBMIT_HOST]
    #[arg(long)]
    pub(crate) hub_host: Option<String>,
    /// The hub's socket on that host
    #[arg(long)]
    pub(crate) hub_socket: PathBuf,
    /// The file on that host holding the hub's key: its connection file, or (with
    /// --bare-key) a key file
    #[arg(long)]
    pub(crate) key_source: PathBuf,
    /// The key source is a key file, not a connection file
    #[arg(long)]
    pub(crate) bare_key: bool,
    /// The ssh command, split on spaces
    #[arg(long)]
    pub(crate) ssh: String,
    /// Slots per engine
    #[arg(long)]
    pub(crate) slots: u32,
    /// A label for the engines (repeatable)
    #[arg(long = "label")]
    pub(crate) labels: Vec<String>,
    /// How to run warren-engine, split on spaces
    #[arg(long)]
    pub(crate) engine_command: String,
}

impl NodeArgs {
    /// The arguments that run `role` with these settings (after `warren engines slurm-node`).
    pub(crate) fn to_args(&self, role: Role) -> Vec<String> {
        let mut args = vec![role.name().to_owned(), "--tag".into(), self.tag.clone()];
        if let Some(host) = &self.hub_host {
            args.extend(["--hub-host".into(), host.clone()]);
        }
        args.extend([
            "--hub-socket".into(),
            self.hub_socket.display().to_string(),
            "--key-source".into(),
            self.key_source.display().to_string(),
        ]);
        if self.bare_key {
            args.push("--bare-key".into());
        }
        args.extend([
            "--ssh".into(),
            self.ssh.clone(),
            "--slots".into(),
            self.slots.to_string(),
        ]);
        for label in &self.labels {
            args.extend(["--label".into(), label.clone()]);
        }
        args.extend(["--engine-command".into(), self.engine_command.clone()]);
        args
    }
}

#[cfg(test)]
impl NodeArgs {
    /// Settings with every kind of word in them (spaces, quotes), for tests.
    pub(crate) fn example() -> Self {
        Self {
            role: Role::Batch,
            tag: "abc".into(),
            hub_host: Some("login 1".into()),
            hub_socket: "/run/user/7/warren/hub.sock".into(),
            key_source: "/run/user/7/warren/hub.json".into(),
            bare_key: false,
            ssh: "ssh -F /home/a/.ssh/cluster config".into(),
            slots: 3,
            labels: vec!["gpu=a100".into(), "it's=odd".into()],
            engine_command: "/opt/warren/bin/warren-engine".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn each_role_gets_back_the_same_settings() {
        let args = NodeArgs::example();
        for role in [Role::Batch, Role::Forward, Role::Engine] {
            let words = std::iter::once("x".to_owned()).chain(args.to_args(role));
            let back = Wrapper::try_parse_from(words).expect("parses").node;
            assert_eq!(back.role, role);
            assert_eq!(back.to_args(Role::Batch), args.to_args(Role::Batch));
        }
    }
}
