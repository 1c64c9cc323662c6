//! The commands that talk to a running hub.

use anyhow::{Context, bail};
use std::io::Read;
use std::time::Duration;
use warren::proto::{ListTasksRequest, TaskInfo, TaskState, task_result, task_spec};
use warren::{Client, Job};

use crate::cli::{PurgeArgs, RunArgs, TasksArgs};
use crate::output::{Printer, exit_code_of};

/// The most stdin a task can be given in one request, leaving room for the rest of it.
const MAX_STDIN: u64 = 4 * 1024 * 1024 - 64 * 1024;

/// Builds the job from the common flags.
pub(crate) fn job(base: Job, args: &RunArgs) -> anyhow::Result<Job> {
    let mut job = base;
    let targets = &args.targets;
    job = if targets.all {
        job.all()
    } else if !targets.engines.is_empty() {
        job.engines(targets.engines.iter().copied())
    } else {
        job.any()
    };
    if let Some(seconds) = args.timeout {
        if !(seconds > 0.0 && seconds.is_finite()) {
            bail!("--timeout must be a positive number of seconds, not {seconds}");
        }
        job = job.timeout(Duration::from_secs_f64(seconds));
    }
    for pair in &args.env {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--env {pair}: write it as NAME=VALUE"))?;
        job = job.env(name, value);
    }
    if let Some(dir) = &args.cwd {
        job = job.cwd(dir.clone());
    }
    if let Some(path) = &args.stdin {
        job = job.stdin(read_stdin_source(path)?);
    }
    for (key, value) in pairs("--label", &args.labels)? {
        job = job.label(key, value);
    }
    for (key, value) in pairs("--where", &args.engine_labels)? {
        job = job.on_engines_labelled(key, value);
    }
    Ok(job.retries(args.retries))
}

/// Parses `KEY=VALUE` flags.
fn pairs(flag: &str, texts: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    texts
        .iter()
        .map(|text| match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("{flag} {text}: write it as KEY=VALUE"),
        })
        .collect()
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
        bail!(
            "--stdin {} is larger than {} bytes, the most one request can carry; copy large inputs to the engines' machine instead",
            path.display(),
            MAX_STDIN
        );
    }
    Ok(bytes)
}

/// Runs a job and streams its output, or with --detach prints its task ids.
pub(crate) async fn run(client: &Client, job: Job, detach: bool) -> anyhow::Result<u8> {
    if detach {
        for id in client.submit(job).await? {
            println!("{id}");
        }
        return Ok(0);
    }
    let request = job.into_request();
    let expected = expected_tasks(client, &request).await;
    let mut events = client.run(request).await?;
    let mut printer = Printer::new(expected);
    while let Some(event) = events.message().await? {
        printer.event(event)?;
    }
    Ok(printer.exit_code())
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

/// Follows one task from a sequence number.
pub(crate) async fn attach(client: &Client, task: u64, from: u64) -> anyhow::Result<u8> {
    let mut events = client.follow(task, from).await?;
    let mut printer = Printer::new(1);
    while let Some(event) = events.message().await? {
        printer.event(event)?;
    }
    if printer.finished() == 0 {
        // Replayed from past the end: report the recorded result instead.
        let info = client.task(task).await?;
        return Ok(info.result.as_ref().map_or(1, exit_code_of));
    }
    Ok(printer.exit_code())
}

/// Prints the engines as a table.
pub(crate) async fn engines(client: &Client) -> anyhow::Result<u8> {
    let engines = client.engines().await?;
    println!(
        "{:>4}  {:<20} {:>8} {:>5} {:>7} {:>6}  LABELS",
        "ID", "HOST", "PID", "SLOTS", "RUNNING", "QUEUED"
    );
    for e in &engines {
        let mut labels: Vec<_> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        println!(
            "{:>4}  {:<20} {:>8} {:>5} {:>7} {:>6}  {}",
            e.id,
            e.hostname,
            e.pid,
            e.slots,
            e.running,
            e.queued,
            labels.join(",")
        );
    }
    Ok(0)
}

/// Prints tasks as a table.
pub(crate) async fn tasks(client: &Client, args: &TasksArgs) -> anyhow::Result<u8> {
    let states = args
        .states
        .iter()
        .map(|s| parse_state(s).map(|st| st as i32))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let page = client
        .tasks_page(ListTasksRequest {
            states,
            engine_id: args.engine.unwrap_or(0),
            limit: args.limit,
            labels: pairs("--label", &args.labels)?.into_iter().collect(),
            submitted_after_us: args.since.map_or(0, |age| {
                warren_proto::now_us() - age.as_micros().min(i64::MAX as u128) as i64
            }),
            submitted_before_us: 0,
            page_token: args.page_token.clone().unwrap_or_default(),
        })
        .await?;
    let tasks = page.tasks;
    println!(
        "{:>6}  {:<10} {:>6} {:>6}  COMMAND",
        "ID", "STATE", "ENGINE", "EXIT"
    );
    for task in &tasks {
        println!(
            "{:>6}  {:<10} {:>6} {:>6}  {}",
            task.id,
            task.state().label(),
            task.engine_id,
            exit_text(task),
            command_text(task, 60)
        );
    }
    if !page.next_page_token.is_empty() {
        eprintln!(
            "warren: more tasks: add --page-token {} for the next page",
            page.next_page_token
        );
    }
    Ok(0)
}

/// Deletes finished tasks from the history.
pub(crate) async fn purge(client: &Client, args: &PurgeArgs) -> anyhow::Result<u8> {
    use warren::proto::{TaskIds, purge_request::Selector};
    let selector = if let Some(age) = args.older_than {
        Selector::FinishedBeforeUs(
            warren_proto::now_us() - age.as_micros().min(i64::MAX as u128) as i64,
        )
    } else if args.all {
        Selector::AllFinished(true)
    } else {
        Selector::Tasks(TaskIds {
            ids: args.tasks.clone(),
        })
    };
    let reply = client.purge(selector).await?;
    println!(
        "purged {} finished tasks ({} bytes of kept output)",
        reply.purged, reply.bytes
    );
    Ok(0)
}

fn parse_state(text: &str) -> anyhow::Result<TaskState> {
    let all = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Aborted,
        TaskState::TimedOut,
        TaskState::Lost,
    ];
    all.into_iter()
        .find(|s| s.label() == text.to_ascii_lowercase())
        .with_context(|| {
            let names: Vec<_> = all.iter().map(|s| s.label()).collect();
            format!(
                "`{text}` is not a task state; use one of {}",
                names.join(", ")
            )
        })
}

fn exit_text(task: &TaskInfo) -> String {
    match task.result.as_ref().and_then(|r| r.exit) {
        Some(task_result::Exit::ExitCode(code)) => code.to_string(),
        Some(task_result::Exit::Signal(signal)) => warren_proto::signals::describe(signal),
        None => "-".into(),
    }
}

fn command_text(task: &TaskInfo, width: usize) -> String {
    let text = match task.spec.as_ref().and_then(|s| s.command.as_ref()) {
        Some(task_spec::Command::Argv(argv)) => argv.args.join(" "),
        Some(task_spec::Command::Script(script)) => format!("sh -c {script:?}"),
        None => String::new(),
    };
    if text.chars().count() > width {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Prints one task's record.
pub(crate) async fn result(client: &Client, task: u64) -> anyhow::Result<u8> {
    let info = client.task(task).await?;
    println!("task      {}", info.id);
    println!("state     {}", info.state().label());
    if !info.reason.is_empty() {
        println!("reason    {}", info.reason);
    }
    println!(
        "engine    {}",
        if info.engine_id == 0 {
            "-".to_string()
        } else {
            info.engine_id.to_string()
        }
    );
    println!("command   {}", command_text(&info, 200));
    println!("exit      {}", exit_text(&info));
    if let Some(result) = &info.result
        && result.started_us > 0
        && result.finished_us >= result.started_us
    {
        let micros = (result.finished_us - result.started_us) as u64;
        println!("ran for   {:?}", Duration::from_micros(micros));
    }
    println!(
        "submitter uid {} pid {}",
        info.submitter_uid, info.submitter_pid
    );
    println!(
        "output    {} bytes in {} events",
        info.output_bytes, info.next_seq
    );
    if info.output_bytes_dropped > 0 {
        println!(
            "not kept  {} bytes (past the hub's output cap)",
            info.output_bytes_dropped
        );
    }
    for attempt in &info.attempts {
        let outcome = if attempt.outcome.is_empty() {
            String::new()
        } else {
            format!(": {}", attempt.outcome)
        };
        println!(
            "attempt {} on engine {} ({}){outcome}",
            attempt.number, attempt.engine_id, attempt.hostname
        );
    }
    if !info.labels.is_empty() {
        let mut labels: Vec<_> = info
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        println!("labels    {}", labels.join(", "));
    }
    Ok(info.result.as_ref().map_or(0, exit_code_of))
}

/// Sends a signal to tasks.
pub(crate) async fn interrupt(client: &Client, tasks: &[u64], signal: &str) -> anyhow::Result<u8> {
    let number = warren_proto::signals::parse(signal).map_err(anyhow::Error::msg)?;
    let reply = client.interrupt(tasks, number).await?;
    for id in &reply.signalled {
        println!(
            "task {id}: sent {}",
            warren_proto::signals::describe(number)
        );
    }
    for id in &reply.not_running {
        eprintln!("warren: task {id} is not running; nothing sent");
    }
    Ok(u8::from(!reply.not_running.is_empty()))
}

/// Aborts tasks.
pub(crate) async fn abort(client: &Client, tasks: &[u64]) -> anyhow::Result<u8> {
    let reply = client.abort(tasks).await?;
    for id in &reply.aborted {
        println!("task {id}: aborted before it started");
    }
    for id in &reply.terminating {
        println!(
            "task {id}: running; sent SIGTERM (SIGKILL follows after the engine's grace period)"
        );
    }
    for id in &reply.already_final {
        eprintln!("warren: task {id} had already ended");
    }
    Ok(0)
}

/// Prints the queues.
pub(crate) async fn queue(client: &Client) -> anyhow::Result<u8> {
    let status = client.queue_status().await?;
    println!("waiting for any engine: {}", status.unassigned);
    println!("tasks in the hub's memory: {}", status.tasks_in_memory);
    println!(
        "{:>6} {:>6} {:>7} {:>6}",
        "ENGINE", "SLOTS", "RUNNING", "QUEUED"
    );
    for e in &status.engines {
        println!(
            "{:>6} {:>6} {:>7} {:>6}",
            e.engine_id, e.slots, e.running, e.queued
        );
    }
    Ok(0)
}
