//! Running work: `exec`, `sh` and `shell`, and the flags that shape a job.

use anyhow::Context;
use std::io::Read;
use warren::{Client, Job};

use crate::cli::{Format, HubArgs, RunArgs, ShellArgs};
use crate::foreground::{self, Input, Options};
use crate::format::{print_ids, print_json};
use crate::output::Printer;

/// The most stdin a task can be given in one request, leaving room for the rest of it.
const MAX_STDIN: u64 = 4 * 1024 * 1024 - 64 * 1024;

/// The flags that shape a job, shared by `exec`/`sh` and `map`.
pub(crate) struct JobFlags<'a> {
    pub(crate) targets: &'a crate::cli::TargetArgs,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) env: &'a [(String, String)],
    pub(crate) cwd: Option<&'a String>,
    pub(crate) labels: &'a [(String, String)],
    pub(crate) engine_labels: &'a [(String, String)],
}

impl JobFlags<'_> {
    /// `job` with these targets, limits, environment and labels.
    pub(crate) fn apply(&self, mut job: Job) -> Job {
        job = if self.targets.all {
            job.all()
        } else if !self.targets.engines.is_empty() {
            job.engines(self.targets.engines.iter().copied())
        } else {
            job.any()
        };
        if let Some(limit) = self.timeout {
            job = job.timeout(limit);
        }
        for (name, value) in self.env {
            job = job.env(name, value);
        }
        if let Some(dir) = self.cwd {
            job = job.cwd(dir.clone());
        }
        for (key, value) in self.labels {
            job = job.label(key, value);
        }
        for (key, value) in self.engine_labels {
            job = job.on_engines_labelled(key, value);
        }
        job
    }
}

/// Builds the job from the common flags (which clap has already checked).
pub(crate) fn job(base: Job, args: &RunArgs) -> anyhow::Result<Job> {
    let flags = JobFlags {
        targets: &args.targets,
        timeout: args.timeout,
        env: &args.env,
        cwd: args.cwd.as_ref(),
        labels: &args.labels,
        engine_labels: &args.engine_labels,
    };
    let job = args.after.apply(flags.apply(base));
    Ok(job.retries(args.retries))
}

fn read_stdin_source(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let source: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot open --stdin {}", path.display()))?,
        )
    };
    source
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read --stdin {}", path.display()))?;
    if bytes.len() as u64 > MAX_STDIN {
        return Err(crate::usage_error(format!(
            "--stdin {} is larger than {} bytes, the most one request can carry; copy large inputs to the engines' machine instead",
            path.display(),
            MAX_STDIN
        )));
    }
    Ok(bytes)
}

/// Runs a job in the foreground (`foreground`: stdin streamed, signals forwarded) and follows
/// its tasks to their end (riding over hub restarts), or with --detach prints its task ids (as
/// `Submit`'s reply with --json). With --json a followed job prints each event as a line of
/// JSON.
pub(crate) async fn run(
    hub: &HubArgs,
    client: &Client,
    job: Job,
    args: &RunArgs,
    format: Format,
) -> anyhow::Result<u8> {
    // A detached task, or one that may run again, is given its stdin whole in the request:
    // nobody streams it later, and a retry must get it again.
    let whole = args.detach || args.retries > 0;
    let job = match &args.stdin {
        Some(path) if whole => job.stdin(read_stdin_source(path)?),
        _ => job,
    };
    if args.detach {
        let task_ids = client.submit(job).await?;
        match format {
            Format::Json => print_json(&warren::proto::SubmitReply { task_ids })?,
            Format::Text | Format::Quiet => print_ids(task_ids)?,
        }
        return Ok(0);
    }
    if args.tty && args.targets.engines.len() > 1 {
        return Err(crate::usage_error(
            "a terminal (-t) is for one task; give one --engine",
        ));
    }
    let request = job.into_request();
    let printer = if format == Format::Json {
        Printer::json()
    } else {
        Printer::new(expected_tasks(client, &request).await)
    };
    let input = match &args.stdin {
        _ if args.no_stdin || whole => Input::None,
        Some(path) if path.as_os_str() != "-" => Input::File(path.clone()),
        _ => Input::Local,
    };
    let options = Options {
        input,
        tty: args.tty,
        reconnect: args.reconnect.reconnect_timeout,
    };
    foreground::run(hub, client, request, printer, options).await
}

/// The shell text `warren shell` runs: the engine's login shell, as ssh runs the remote one.
const LOGIN_SHELL: &str = "exec \"${SHELL:-/bin/sh}\" -l";

/// `warren shell [ENGINE]`: a login shell on a terminal.
pub(crate) async fn shell(hub: &HubArgs, client: &Client, args: &ShellArgs) -> anyhow::Result<u8> {
    let job = Job::script(LOGIN_SHELL);
    let job = match args.engine {
        Some(id) => job.engines([id]),
        None => job.any(),
    };
    let options = Options {
        input: Input::Local,
        tty: true,
        reconnect: args.reconnect.reconnect_timeout,
    };
    foreground::run(hub, client, job.into_request(), Printer::new(1), options).await
}

/// How many tasks a request will make, to choose between raw and prefixed output.
async fn expected_tasks(client: &Client, request: &warren::proto::ExecuteRequest) -> usize {
    use warren::proto::targets::Selector;
    match request.targets.as_ref().and_then(|t| t.selector.as_ref()) {
        Some(Selector::All(_)) => client.engines().await.map_or(2, |e| e.len()),
        Some(Selector::Engines(list)) => list.ids.len(),
        _ => 1,
    }
}
