//! The arguments of `warren engines ssh`, `warren tunnel` and `warren cluster start`, and
//! how they run ssh.

use clap::Args;

/// How to run ssh.
#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    /// The ssh command, split on spaces (e.g. "ssh -F ~/.ssh/other_config") [default: ssh, or
    /// the config file's for a named hub]
    #[arg(long = "ssh", env = "WARREN_SSH", value_name = "COMMAND")]
    pub(crate) command: Option<String>,
}

impl SshArgs {
    /// The ssh command given, else `ssh`.
    pub(crate) fn command(&self) -> &str {
        self.command.as_deref().unwrap_or("ssh")
    }
}

#[derive(Debug, Args)]
pub(crate) struct EnginesSshArgs {
    /// The machine to run engines on, as ssh names it
    #[arg(value_name = "[USER@]HOST")]
    pub(crate) host: String,
    /// How many engines
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) engines: u32,
    /// Slots per engine
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) slots: u32,
    /// A label for the engines, as key=value (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// How to run warren-engine on that machine
    #[arg(long, default_value = "warren-engine", value_name = "COMMAND")]
    pub(crate) remote_engine_command: String,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TunnelArgs {
    /// The machine the hub runs on, as ssh names it; or the name of a hub with a `host` in the
    /// config file [default: the host of --hub's (or the default) hub]
    #[arg(value_name = "[USER@]HOST")]
    pub(crate) host: Option<String>,
    /// The tunnel's name, for --remote [default: the host]
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The hub's socket on that machine [default: the hub's default socket there]
    #[arg(long, value_name = "PATH")]
    pub(crate) remote_socket: Option<String>,
    /// How to run warren-hub on that machine [default: warren-hub, or the config file's]
    #[arg(long, value_name = "COMMAND")]
    pub(crate) remote_hub_command: Option<String>,
    /// Keep running in the background (stop it with --stop NAME)
    #[arg(long, conflicts_with = "stop")]
    pub(crate) background: bool,
    /// Stop the background tunnel called NAME
    #[arg(long, value_name = "NAME", conflicts_with_all = ["host", "name"])]
    pub(crate) stop: Option<String>,
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// How many engines to start
    #[arg(short = 'n', long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub(crate) engines: u32,
    /// Slots per engine
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) slots: u32,
    /// Once the engines are up, run this on all of them and show its output (the cluster keeps running)
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
    /// Detach once the cluster is up: its pid and log go beside the socket (hub.cluster.pid,
    /// hub.cluster.log), where `warren cluster stop` finds them
    #[arg(long)]
    pub(crate) daemon: bool,
    /// (The detached process itself.)
    #[arg(long, hide = true, conflicts_with = "daemon")]
    pub(crate) daemon_child: bool,
}
