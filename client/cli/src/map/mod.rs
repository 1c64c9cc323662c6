//! `warren map`: one task per argument, in the manner of GNU parallel.
//!
//! Arguments come from the words after `:::`, the lines of `--args FILE`, or the lines of
//! stdin, read a little ahead of need. They are submitted in batches (`SubmitBatch`), at most
//! `-j` tasks in flight (submitted and not ended) at once, so neither this process nor the hub
//! holds more than that many, however many arguments there are. Each task in flight is
//! followed on its own stream (`follow`); its output is shown whole once it ends (or written
//! under `--results`), its line goes to `--joblog`, and the progress bar moves on.
//!
//! Ctrl-C stops the submission and aborts the tasks in flight that have not started; the
//! running ones are waited for (a second Ctrl-C aborts them too). The exit status is the
//! number of tasks that did not succeed, at most 101 (as GNU parallel's), 130 after Ctrl-C.

mod args;
mod follow;
mod input;
mod joblog;
mod output;
mod progress;

use anyhow::Context;
use std::collections::HashMap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use warren::proto::ExecuteRequest;
use warren::{Client, MAX_BATCH, Outcome};

use crate::cli::{HubArgs, MapArgs};
use follow::{Message, Watch};
use input::Template;
use joblog::JobLog;
use output::Sink;
use progress::Progress;

/// The exit status for more than 100 failed tasks (GNU parallel's).
const MOST_FAILED: u64 = 101;
/// The exit status after Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;
/// Bytes of requests in one SubmitBatch, at most (the hub takes up to 16 MiB).
const BATCH_BYTES: usize = 8 << 20;

/// What the map knows of a task in flight.
struct InFlight {
    arg: String,
    command: Vec<String>,
    started: bool,
}

/// Runs the map; returns the exit status.
pub(crate) async fn run(hub: &HubArgs, args: &MapArgs) -> anyhow::Result<u8> {
    let (words, listed) = input::split_command(&args.command).map_err(crate::usage_error)?;
    if listed.is_some() && args.args.is_some() {
        return Err(crate::usage_error(
            "give the arguments after `:::` or in --args FILE, not both",
        ));
    }
    let template = Template::new(words);
    // Installed before anything is submitted: from here on Ctrl-C is ours to handle.
    let mut interrupts = signal(SignalKind::interrupt()).context("cannot catch Ctrl-C")?;
    let client = crate::connect(hub).await?;
    let fan = args.tasks_per_argument(&client).await?;
    let jobs = match args.jobs {
        Some(jobs) => jobs as usize,
        None => args.default_jobs(&client).await?,
    };
    let (mut arguments, total) = input::open(listed, args.args.as_deref()).await?;
    if let Some(dir) = &args.results {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --results {}", dir.display()))?;
    }
    let mut joblog = args.joblog.as_deref().map(JobLog::create).transpose()?;
    let mut progress = Progress::new(total.map(|n| n * fan as u64));
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();

    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    let mut ahead: Vec<String> = Vec::new();
    let (mut job_number, mut failed) = (0u64, 0u64);
    let (mut input_done, mut interrupted) = (false, false);
    let mut input_error: Option<String> = None;
    loop {
        let free = jobs.saturating_sub(in_flight.len());
        // Refill once a quarter of -j is free (or nothing is in flight), so each batch is
        // worth a call.
        let want = !interrupted
            && !input_done
            && (in_flight.is_empty() || free >= (jobs / 4).max(1))
            && free > 0;
        if want {
            let room = (free / fan).clamp(1, MAX_BATCH);
            while ahead.len() < room {
                match arguments.try_recv() {
                    Ok(Ok(arg)) => ahead.push(arg),
                    Ok(Err(why)) => {
                        (input_done, input_error) = (true, Some(why));
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        input_done = true;
                        break;
                    }
                }
            }
            if !ahead.is_empty() {
                let batch = std::mem::take(&mut ahead);
                let submitted = submit(&client, args, &template, batch, &mut job_number).await?;
                for (arg, command, ids) in submitted {
                    progress.add((ids.len() as u64).saturating_sub(fan as u64));
                    for id in ids {
                        let sink = match &args.results {
                            Some(dir) => Sink::files(dir, id, &arg)?,
                            None => Sink::held(),
                        };
                        Watch::start(&client, id, sink, args.reconnect.reconnect_timeout, &tx);
                        let task = InFlight {
                            arg: arg.clone(),
                            command: command.clone(),
                            started: false,
                        };
                        in_flight.insert(id, task);
                    }
                }
                continue;
            }
        }
        if in_flight.is_empty() && (input_done || interrupted) {
            break;
        }
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { break };
                match message {
                    Message::Started(id) => {
                        if let Some(task) = in_flight.get_mut(&id) && !task.started {
                            task.started = true;
                            progress.started();
                        }
                    }
                    Message::Ended(ended) => {
                        let Some(task) = in_flight.remove(&ended.task) else { continue };
                        let succeeded = ended.outcome.succeeded();
                        failed += u64::from(!succeeded);
                        progress.ended(task.started, succeeded);
                        let mut sink = ended.sink;
                        progress.suspend(|| -> anyhow::Result<()> {
                            sink.show()?;
                            report(ended.task, &task, &ended.outcome);
                            Ok(())
                        })?;
                        if let Some(log) = &mut joblog {
                            log.write(&joblog::Line {
                                task: ended.task,
                                engine: ended.engine,
                                outcome: &ended.outcome,
                                sent: 0,
                                received: ended.received,
                                command: &task.command,
                            })?;
                        }
                    }
                }
            }
            arg = arguments.recv(), if want && ahead.is_empty() => match arg {
                Some(Ok(arg)) => ahead.push(arg),
                Some(Err(why)) => (input_done, input_error) = (true, Some(why)),
                None => input_done = true,
            },
            _ = interrupts.recv() => {
                if interrupted {
                    let running: Vec<u64> = in_flight.keys().copied().collect();
                    progress.suspend(|| eprintln!(
                        "[warren] interrupted again: aborting the {} running tasks", running.len()
                    ));
                    if !running.is_empty() {
                        client.abort(&running).await?;
                    }
                    progress.finish();
                    return Ok(EXIT_INTERRUPTED);
                }
                interrupted = true;
                let waiting = not_started(&client, &in_flight).await?;
                if !waiting.is_empty() {
                    client.abort(&waiting).await?;
                }
                let running = in_flight.len() - waiting.len();
                progress.suspend(|| eprintln!(
                    "[warren] interrupted: no more tasks are submitted; aborted {} that had not started; waiting for {running} running (Ctrl-C again aborts them)",
                    waiting.len()
                ));
            }
        }
    }
    progress.finish();
    if let Some(why) = input_error {
        eprintln!("warren: {why}; the arguments before it were run");
        return Ok(crate::EXIT_WARREN_FAILED);
    }
    if interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(failed.min(MOST_FAILED) as u8)
}

/// The tasks in flight that have not started, as the hub has them now (its word is newer
/// than the events this map has read).
async fn not_started(
    client: &Client,
    in_flight: &HashMap<u64, InFlight>,
) -> anyhow::Result<Vec<u64>> {
    use warren::proto::TaskState;
    let candidates: Vec<u64> = in_flight
        .iter()
        .filter(|(_, task)| !task.started)
        .map(|(&id, _)| id)
        .collect();
    Ok(client
        .tasks_by_id(&candidates)
        .await?
        .into_iter()
        .filter(|task| matches!(task.state(), TaskState::Waiting | TaskState::Queued))
        .map(|task| task.id)
        .collect())
}

/// Submits one task request per argument, in as few calls as the bounds allow; for each
/// argument, its command and the tasks it made.
async fn submit(
    client: &Client,
    args: &MapArgs,
    template: &Template,
    batch: Vec<String>,
    job_number: &mut u64,
) -> anyhow::Result<Vec<(String, Vec<String>, Vec<u64>)>> {
    let mut submitted = Vec::with_capacity(batch.len());
    let mut pending: Vec<(String, Vec<String>)> = Vec::new();
    let mut requests: Vec<ExecuteRequest> = Vec::new();
    let mut bytes = 0;
    let count = batch.len();
    for (i, arg) in batch.into_iter().enumerate() {
        *job_number += 1;
        let command = template.fill(&arg, *job_number);
        let request = args.job(command.clone()).into_request();
        bytes += prost_len(&request);
        requests.push(request);
        pending.push((arg, command));
        if bytes >= BATCH_BYTES || i + 1 == count {
            let ids = client
                .submit_batch(std::mem::take(&mut requests))
                .await
                .context("cannot submit the tasks")?;
            for ((arg, command), ids) in pending.drain(..).zip(ids) {
                submitted.push((arg, command, ids));
            }
            bytes = 0;
        }
    }
    Ok(submitted)
}

/// A request's size on the wire.
fn prost_len(request: &ExecuteRequest) -> usize {
    prost::Message::encoded_len(request)
}

/// Says why a task did not succeed, unless it simply exited non-zero on its own (GNU
/// parallel says nothing then either).
fn report(task_id: u64, task: &InFlight, outcome: &Outcome) {
    use warren::Exit;
    use warren::proto::TaskState;
    let plain_exit = outcome.state == TaskState::Failed
        && outcome.started_us > 0
        && matches!(outcome.exit, Some(Exit::Code(_)));
    if outcome.succeeded() || plain_exit {
        return;
    }
    let why = if outcome.error.is_empty() {
        String::new()
    } else {
        format!(": {}", outcome.error)
    };
    eprintln!(
        "warren: task {task_id} ({}) {}{why}",
        task.arg,
        outcome.state.label()
    );
}
