//! `warren map`'s flags, and `--after`/`--after-ok` (shared with `exec` and `sh`).

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use warren::{Client, Job};

use crate::cli::{ReconnectArgs, TargetArgs};
use crate::parse::{MAX_RETRIES, parse_env, parse_label, parse_timeout};

/// The most tasks in flight `-j` takes by default (the hub's default bound on the follow
/// streams of one client process is 256; each task in flight has one).
const DEFAULT_JOBS_MAX: usize = 256;

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

impl MapArgs {
    /// The job for one command line.
    pub(crate) fn job(&self, command: Vec<String>) -> Job {
        let flags = crate::commands::JobFlags {
            targets: &self.targets,
            timeout: self.timeout,
            env: &self.env,
            cwd: self.cwd.as_ref(),
            labels: &self.labels,
            engine_labels: &self.engine_labels,
        };
        self.after
            .apply(flags.apply(Job::argv(command)))
            .retries(self.retries)
    }

    /// The engines that may run the tasks: their ids and slots.
    async fn engines(&self, client: &Client) -> anyhow::Result<Vec<(u32, u32)>> {
        let engines = client.engines().await?;
        let listed = &self.targets.engines;
        Ok(engines
            .into_iter()
            .filter(|e| listed.is_empty() || listed.contains(&e.id))
            .filter(|e| {
                self.engine_labels
                    .iter()
                    .all(|(k, v)| e.labels.get(k) == Some(v))
            })
            .map(|e| (e.id, e.slots))
            .collect())
    }

    /// How many tasks each argument makes: one, or one per engine with --all or --engine.
    pub(crate) async fn tasks_per_argument(&self, client: &Client) -> anyhow::Result<usize> {
        Ok(if self.targets.all {
            self.engines(client).await?.len().max(1)
        } else if !self.targets.engines.is_empty() {
            self.targets.engines.len()
        } else {
            1
        })
    }

    /// `-j` when not given: twice the slots of the engines that may run the tasks (so each
    /// has the next task waiting when one ends), at least one argument's tasks.
    pub(crate) async fn default_jobs(&self, client: &Client) -> anyhow::Result<usize> {
        let slots: usize = self
            .engines(client)
            .await?
            .iter()
            .map(|&(_, slots)| slots as usize)
            .sum();
        let fan = self.tasks_per_argument(client).await?;
        Ok((2 * slots).clamp(fan, DEFAULT_JOBS_MAX.max(fan)))
    }
}
