//! The command line, as clap sees it. Doc comments are the help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

use crate::parse::{
    MAX_RETRIES, parse_env, parse_label, parse_seconds, parse_signal, parse_state, parse_timeout,
};
use warren::proto::TaskState;
use warren_proto::locate::Locator;

/// Run code on a warren hub's engines, from here or from another machine over ssh.
#[derive(Debug, Parser)]
#[command(name = "warren", version, propagate_version = true,
          after_help = warren_proto::locate::LOCATOR_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) hub: HubArgs,

    #[command(flatten)]
    pub(crate) output: crate::format::OutputArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the hub is. Each flag's `WARREN_*` variable stands in for it only when none of these
/// flags is given (see `warren_proto::locate::Locator`).
#[derive(Debug, Default, Args)]
pub(crate) struct HubArgs {
    /// The hub called NAME in $XDG_CONFIG_HOME/warren/config.toml, as if its settings were
    /// flags (the flags below win over them) [env: WARREN_HUB] [default: the file's `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) hub: Option<String>,

    /// The hub's connection file [env: WARREN_CONNECTION_FILE] [default: beside --socket, else $XDG_RUNTIME_DIR/warren/hub.json, else /tmp/warren-<uid>/hub.json]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) connection_file: Option<PathBuf>,

    /// The hub's socket [env: WARREN_SOCKET]; with a connection file: that file's key and id, through this socket
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,

    /// Hex key file (mode 0600) to sign with instead of a connection file's key [env: WARREN_KEY_FILE]; without a connection file, the hub's id (new at each of its starts) is learned from its first answer
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,

    /// Use the hub reached through the tunnel called NAME (see `warren tunnel`) [env: WARREN_REMOTE]
    #[arg(long, global = true, value_name = "NAME",
          conflicts_with_all = ["connection_file", "key_file"])]
    pub(crate) remote: Option<String>,
}

impl HubArgs {
    /// The flags given on the command line, without the environment.
    pub(crate) fn flags(&self) -> Locator {
        Locator {
            connection_file: self.connection_file.clone(),
            socket: self.socket.clone(),
            key_file: self.key_file.clone(),
            remote: self.remote.clone(),
            hub: self.hub.clone(),
        }
    }

    /// Where the hub is: these flags if any was given, else the environment's.
    pub(crate) fn locator(&self) -> Locator {
        self.flags().or_env()
    }

    /// The flags to repeat in a hint (`warren --socket S attach ...`): those given on the
    /// command line; the environment still holds the rest.
    pub(crate) fn hint(&self) -> String {
        let flags = self.flags();
        let mut text = String::from("warren");
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                text.push_str(&format!(" {flag} {}", shell_word(&value)));
            }
        };
        add("--hub", flags.hub);
        add("--remote", flags.remote);
        add(
            "--connection-file",
            flags.connection_file.map(|p| p.display().to_string()),
        );
        add("--socket", flags.socket.map(|p| p.display().to_string()));
        add(
            "--key-file",
            flags.key_file.map(|p| p.display().to_string()),
        );
        text
    }
}

/// A word as a POSIX shell reads it back, quoted only if it must be.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a program on engines and stream its output here
    Exec(ExecArgs),
    /// Run shell text (with `sh -c`) on engines and stream its output here
    Sh(ShArgs),
    /// A login shell on an engine, on a terminal: `warren exec -t --engine ENGINE -- $SHELL -l`,
    /// with the engine's $SHELL
    Shell(ShellArgs),
    /// List the engines, or stop some
    Engines {
        #[command(subcommand)]
        action: Option<EnginesAction>,
    },
    /// List tasks, newest first
    Tasks(TasksArgs),
    /// Show tasks' records: state, engine, exit, timings, output size (exits with the worst
    /// status among them)
    Result(crate::wait::ResultArgs),
    /// Run a command once per argument (from stdin, --args FILE or after :::), in the manner
    /// of GNU parallel; exits with the number of failed tasks (at most 101)
    Map(crate::map::MapArgs),
    /// Wait for tasks to end; exits with the worst status among them
    Wait(crate::wait::WaitArgs),
    /// Follow a task's output: replay from a sequence number, then live until it ends
    Attach {
        /// The task id
        task: u64,
        /// The first event to replay (0 replays everything the hub kept)
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        from: u64,
        /// Show the stdin the task was given (streamed from a foreground `exec`, as recorded)
        /// instead of its output
        #[arg(long)]
        input: bool,
        #[command(flatten)]
        reconnect: ReconnectArgs,
    },
    /// Send a signal to running tasks' process groups (a task that already ended is not an
    /// error; an unknown id is)
    Interrupt {
        /// Task ids
        #[arg(required = true)]
        tasks: Vec<u64>,
        /// The signal: a name (INT, TERM, KILL, USR1...) or a number
        #[arg(long, short = 's', default_value = "INT", value_parser = parse_signal)]
        signal: i32,
    },
    /// Abort tasks: queued ones never start, running ones get SIGTERM then SIGKILL (a task
    /// that already ended is not an error; an unknown id is)
    Abort {
        /// Task ids
        #[arg(required = true)]
        tasks: Vec<u64>,
    },
    /// Show how many tasks wait, overall and per engine
    Queue,
    /// Delete finished tasks and their output from the hub's history
    Purge(PurgeArgs),
    /// Stop the hub, and its engines unless --keep-engines
    Shutdown {
        /// Leave the engines running; they reconnect when a hub comes back
        #[arg(long)]
        keep_engines: bool,
    },
    /// Print a signed `authorization` metadata line for one call, good once at the hub's
    /// current start; pass it to grpcurl through the environment: AUTH=$(warren sign M) grpcurl
    /// -expand-headers -rpc-header '${AUTH}' ...
    Sign {
        /// The full gRPC method path, e.g. /warren.v1.Control/ListEngines
        method: String,
    },
    /// Show the hub's version, protocol, id and clock
    Version,
    /// Check that a hub answers on the socket (no key needed)
    Ping,
    /// Reach a hub on another machine through an OpenSSH forward of its socket
    Tunnel(TunnelArgs),
    /// Run a local cluster
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Open, list, close and restart sessions: live interpreters on engines
    Session {
        #[command(subcommand)]
        action: crate::session::SessionAction,
    },
    /// Run code in every session of a group, like IPython's %px (or a prompt, with -i)
    Px(crate::px::PxArgs),
    /// Copy files to and from engines, like scp: `cp [-r] LOCAL... ID:PATH`,
    /// `cp [-r] ID:PATH LOCAL`, or `cp [-r] LOCAL... --all:PATH` (to every engine)
    Cp(crate::cp::CpArgs),
    /// Check the setup, a line per check: ok, or what to do (exit status 1 if any failed)
    Doctor,
    /// Print a shell completion script, e.g. `warren completions bash >
    /// ~/.local/share/bash-completion/completions/warren`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (warren.1 and one per command) into DIR, or print warren(1)
    Man {
        /// Where to write them (created if missing)
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnginesAction {
    /// Tell engines to exit (all of them if no id is given)
    Stop {
        /// Engine ids
        ids: Vec<u32>,
    },
    /// Start engines on another machine that reach this hub through `ssh -R`
    Ssh(EnginesSshArgs),
    /// Start engines as one Slurm job, each reaching this hub through an ssh forward from its
    /// node
    Slurm(crate::slurm::SlurmArgs),
    /// Internal: the parts of a `warren engines slurm` job that run on its nodes
    #[command(hide = true)]
    SlurmNode(crate::slurm::NodeArgs),
}

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

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterAction {
    /// Start a hub and N engines here, in the foreground until Ctrl-C (or detached, with
    /// --daemon)
    Start(ClusterArgs),
    /// Stop the cluster `cluster start --daemon` started on this socket (its hub and engines)
    Stop,
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

/// Which engines a job runs on.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct TargetArgs {
    /// One task on every engine
    #[arg(long, short = 'a')]
    pub(crate) all: bool,
    /// One task on each named engine (repeatable)
    #[arg(long = "engine", short = 'e', value_name = "ID")]
    pub(crate) engines: Vec<u32>,
    /// One task on the least loaded engine (the default)
    #[arg(long)]
    pub(crate) any: bool,
}

/// How a job runs.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    /// Stop the task (SIGTERM, then SIGKILL) after this many seconds (at most 30 days)
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// Run the task on a terminal (as `ssh -t`): this one goes raw, and Ctrl-C and every
    /// other key go to the task as bytes
    #[arg(long, short = 't', conflicts_with_all = ["detach", "all", "retries"])]
    pub(crate) tty: bool,
    /// Give the task an empty stdin instead of this command's (as `ssh -n`)
    #[arg(long, short = 'n', conflicts_with_all = ["stdin", "tty"])]
    pub(crate) no_stdin: bool,
    /// Set an environment variable for the task (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Run in this directory on the engine
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// Stream this file to the task's stdin instead of this command's stdin; with --detach or
    /// --retries, read it whole (at most 4 MiB; `-` for this command's stdin), as those tasks
    /// get no streamed stdin
    #[arg(long, value_name = "FILE")]
    pub(crate) stdin: Option<PathBuf>,
    /// Run it again elsewhere, up to N times (at most 10), if its engine dies while running it
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_RETRIES))]
    pub(crate) retries: u32,
    /// Label the task, to find it later with `warren tasks --label` (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    #[command(flatten)]
    pub(crate) after: crate::map::AfterArgs,
    /// Only on engines with this label (with --all or --any; repeatable)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_label,
          conflicts_with = "engines")]
    pub(crate) engine_labels: Vec<(String, String)>,
    /// Print the task ids and return without waiting
    #[arg(long, short = 'd')]
    pub(crate) detach: bool,
    #[command(flatten)]
    pub(crate) reconnect: ReconnectArgs,
}

/// How long a follower waits for a hub that went away.
#[derive(Debug, Args)]
pub(crate) struct ReconnectArgs {
    /// If the hub goes away while following, keep trying to reconnect for this long
    /// (seconds, or 90s, 5m...; 0 gives up at once)
    #[arg(long = "reconnect-timeout", value_name = "SECONDS", default_value = "60",
          env = "WARREN_RECONNECT_TIMEOUT", value_parser = parse_seconds)]
    pub(crate) reconnect_timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// The program and its arguments (options end at the first word that is not one; `--`
    /// ends them too)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub(crate) argv: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    /// The engine [default: the least loaded]
    #[arg(value_name = "ENGINE")]
    pub(crate) engine: Option<u32>,
    #[command(flatten)]
    pub(crate) reconnect: ReconnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ShArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// The shell text
    pub(crate) script: String,
}

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Only tasks in this state (waiting, queued, running, succeeded, failed, aborted, timed-out, lost; repeatable)
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub(crate) states: Vec<TaskState>,
    /// Only tasks on this engine
    #[arg(long, value_name = "ID")]
    pub(crate) engine: Option<u32>,
    /// Only tasks with this label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Only tasks submitted within this long (e.g. 90s, 30m, 12h, 7d)
    #[arg(long, value_name = "AGE", value_parser = warren_proto::os::units::parse_age)]
    pub(crate) since: Option<std::time::Duration>,
    /// At most this many
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// Continue a listing where an earlier page ended
    #[arg(long, value_name = "TOKEN")]
    pub(crate) page_token: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PurgeArgs {
    /// Tasks that finished longer ago than this (e.g. 7d)
    #[arg(long, value_name = "AGE", value_parser = warren_proto::os::units::parse_age)]
    pub(crate) older_than: Option<std::time::Duration>,
    /// Every finished task
    #[arg(long)]
    pub(crate) all: bool,
    /// These tasks (each must be finished)
    pub(crate) tasks: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every `WARREN_*` variable a flag's help names is read: by clap (`env =`) or, for the
    /// flags that find the hub, by `Locator::from_env`; and engines keep each one out of their
    /// tasks' environments.
    #[test]
    fn every_variable_the_help_promises_is_read() {
        use warren_proto::locate::{
            ENV_CONNECTION_FILE, ENV_HUB, ENV_KEY_FILE, ENV_REMOTE, ENV_SOCKET,
        };
        let located = [
            ENV_CONNECTION_FILE,
            ENV_SOCKET,
            ENV_KEY_FILE,
            ENV_REMOTE,
            ENV_HUB,
        ];
        fn visit(command: &clap::Command, found: &mut Vec<(String, String, bool)>) {
            for arg in command.get_arguments() {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let named = help
                    .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                    .filter(|word| word.starts_with("WARREN_"))
                    .map(str::to_owned);
                for var in named.chain(env.clone()) {
                    let by_clap = env.as_deref() == Some(var.as_str());
                    found.push((arg.get_id().to_string(), var, by_clap));
                }
            }
            for sub in command.get_subcommands() {
                visit(sub, found);
            }
        }
        let mut found = Vec::new();
        visit(&Cli::command(), &mut found);
        assert!(found.len() >= 6, "{found:?}");
        for (flag, var, by_clap) in found {
            assert!(
                by_clap || located.contains(&var.as_str()),
                "--{flag}'s help names {var}, which nothing reads"
            );
            assert!(
                warren_proto::OWN_ENV_VARS.contains(&var.as_str()),
                "{var} (--{flag}) is missing from OWN_ENV_VARS"
            );
        }
    }

    #[test]
    fn hints_quote_only_what_needs_it() {
        assert_eq!(
            shell_word("/run/user/0/warren/hub.sock"),
            "/run/user/0/warren/hub.sock"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
