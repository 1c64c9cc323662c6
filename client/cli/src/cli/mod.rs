//! The command line, as clap sees it: every flag, argument and subcommand of `warren`, with
//! what the flags say on their own (where the hub is, the output format, the log filter).
//! Doc comments are the help text. The commands take their arguments from here
//! (`crate::cli::RunArgs`...); this module imports nothing from them.
//!
//! The tree is here; the arguments of each family of commands are in a file of their own:
//! where the hub is (`hub`), output and logging (`output`), running tasks (`run`: exec, sh,
//! shell, map), reading tasks (`tasks`: tasks, result, wait, purge, cp), sessions
//! (`sessions`: session, px), engines elsewhere and local clusters (`engines`: engines ssh,
//! tunnel, cluster), Slurm (`slurm`: engines slurm, engines slurm-node), and the values of
//! flags checked as the hub would check them (`parse`).

mod engines;
mod hub;
mod output;
mod parse;
mod run;
mod sessions;
mod slurm;
mod tasks;

pub(crate) use engines::{ClusterArgs, EnginesSshArgs, SshArgs, TunnelArgs};
pub(crate) use hub::{HubArgs, shell_word, socket_hint};
pub(crate) use output::{Format, OutputArgs};
pub(crate) use run::{ExecArgs, MapArgs, ReconnectArgs, RunArgs, ShArgs, ShellArgs, TargetArgs};
pub(crate) use sessions::{Interpreter, OpenArgs, PxArgs, SessionAction};
pub(crate) use slurm::{NodeArgs, Role, SlurmArgs};
pub(crate) use tasks::{CpArgs, PurgeArgs, ResultArgs, Selection, TasksArgs, WaitArgs};

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use parse::parse_signal;

/// Run code on a warren hub's engines, from here or from another machine over ssh.
#[derive(Debug, Parser)]
#[command(name = "warren", version, propagate_version = true,
          after_help = warren_proto::locate::LOCATOR_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) hub: HubArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
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
    Result(ResultArgs),
    /// Run a command once per argument (from stdin, --args FILE or after :::), in the manner
    /// of GNU parallel; exits with the number of failed tasks (at most 101)
    Map(MapArgs),
    /// Wait for tasks to end; exits with the worst status among them
    Wait(WaitArgs),
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
        action: SessionAction,
    },
    /// Run code in every session of a group, like IPython's %px (or a prompt, with -i)
    Px(PxArgs),
    /// Copy files to and from engines, like scp: `cp [-r] LOCAL... ID:PATH`,
    /// `cp [-r] ID:PATH LOCAL`, or `cp [-r] LOCAL... --all:PATH` (to every engine)
    Cp(CpArgs),
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
    Slurm(SlurmArgs),
    /// Internal: the parts of a `warren engines slurm` job that run on its nodes
    #[command(hide = true)]
    SlurmNode(NodeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterAction {
    /// Start a hub and N engines here, in the foreground until Ctrl-C (or detached, with
    /// --daemon)
    Start(ClusterArgs),
    /// Stop the cluster `cluster start --daemon` started on this socket (its hub and engines)
    Stop,
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
}
