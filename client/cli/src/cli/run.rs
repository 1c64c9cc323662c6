//! The arguments of the commands that run tasks: `exec`, `sh`, `shell` and `map`, and the
//! flags they share (which engines, how a job runs, what it waits for, reconnecting).

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use warren::Job;

use super::parse::{MAX_RETRIES, parse_env, parse_label, parse_seconds, parse_timeout};

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
    pub(crate) after: AfterArgs,
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
pub(crate) struct ShArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// The shell text
    pub(crate) script: String,
}

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    /// The engine [default: the least loaded]
    #[arg(value_name = "ENGINE")]
    pub(crate) engine: Option<u32>,
    #[command(flatten)]
    pub(crate) reconnect: ReconnectArgs,
}

/// Which tasks a task waits for.
#[derive(Debug, Default, Args)]
pub(crate) struct AfterArgs {
    /// Hold the task until these tasks have ended, however they end (comma-separated ids;
    /// repeatable)
    #[arg(long, value_name = "ID[,ID...]", value_delimiter = ',')]
    pub(crate) after: Vec<u64>,
    /// Hold the task until these tasks have succeeded; if one does not, the task ends aborted,
    /// naming it (comma-separated ids; repeatable)
    #[arg(long = "after-ok", value_name = "ID[,ID...]", value_delimiter = ',')]
    pub(crate) after_ok: Vec<u64>,
}

impl AfterArgs {
    /// The job, waiting for what these flags name.
    pub(crate) fn apply(&self, job: Job) -> Job {
        job.after(self.after.iter().copied())
            .after_ok(self.after_ok.iter().copied())
    }
}

/// The arguments of `warren map`.
#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,
    /// Only on engines with this label (with --all or --any; repeatable)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_label,
          conflicts_with = "engines")]
    pub(crate) engine_labels: Vec<(String, String)>,
    /// Tasks in flight (submitted and not ended) at once [default: twice the slots of the
    /// engines that may run them, at most 256]
    #[arg(short = 'j', long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) jobs: Option<u32>,
    /// The arguments, one per line (`-` for stdin) [default: the words after `:::`, else stdin]
    #[arg(long = "args", value_name = "FILE")]
    pub(crate) args: Option<PathBuf>,
    /// Write a line per task as it ends to FILE, in GNU parallel's joblog columns (Seq is the
    /// task id)
    #[arg(long, value_name = "FILE")]
    pub(crate) joblog: Option<PathBuf>,
    /// Save each task's output in DIR/<task id>/stdout and stderr (its argument in arg)
    /// instead of showing it
    #[arg(long, value_name = "DIR")]
    pub(crate) results: Option<PathBuf>,
    /// Stop each task (SIGTERM, then SIGKILL) after this many seconds (at most 30 days)
    #[arg(long, short = 't', value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// Set an environment variable for the tasks (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Run in this directory on the engine
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// Run a task again elsewhere, up to N times (at most 10), if its engine dies while
    /// running it
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_RETRIES))]
    pub(crate) retries: u32,
    /// Label the tasks, to find them later with `--label` (repeatable), e.g. `warren wait
    /// --label batch=7`
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    #[command(flatten)]
    pub(crate) after: AfterArgs,
    #[command(flatten)]
    pub(crate) reconnect: ReconnectArgs,
    /// The program and its arguments, with {} for the argument ({.} without its extension,
    /// {/} its basename, {//} its directory, {/.} both, {#} the job number; without any, the
    /// argument goes last); then `:::` and the arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}
