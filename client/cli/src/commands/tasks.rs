//! The task commands: list, show a result, interrupt, abort, purge.

use std::time::Duration;
use warren::proto::{ListTasksRequest, TaskInfo, task_result, task_spec};
use warren::{Client, Outcome};

use crate::cli::{Format, PurgeArgs, TasksArgs};
use crate::format::{print_ids, print_json};
use crate::output::exit_code_of;
use crate::table::{Align, Table};
use crate::time;

/// An engine id, or `-` for none (a task not placed yet).
pub(super) fn engine_text(id: u32) -> String {
    if id == 0 { "-".into() } else { id.to_string() }
}

/// Prints tasks as a table, newest first (their ids with -q, `ListTasks`' reply with --json).
pub(crate) async fn tasks(client: &Client, args: &TasksArgs, format: Format) -> anyhow::Result<u8> {
    let page = client
        .tasks_page(ListTasksRequest {
            states: args.states.iter().map(|&s| s as i32).collect(),
            engine_id: args.engine.unwrap_or(0),
            limit: args.limit,
            labels: args.labels.iter().cloned().collect(),
            submitted_after_us: args.since.map_or(0, |age| {
                warren_proto::now_us() - age.as_micros().min(i64::MAX as u128) as i64
            }),
            submitted_before_us: 0,
            page_token: args.page_token.clone().unwrap_or_default(),
            ..ListTasksRequest::default()
        })
        .await?;
    match format {
        Format::Json => {
            print_json(&warren::proto::ListTasksReply {
                tasks: page.tasks,
                next_page_token: page.next_page_token.unwrap_or_default(),
            })?;
            return Ok(0);
        }
        Format::Quiet => {
            print_ids(page.tasks.iter().map(|t| t.id))?;
            return Ok(0);
        }
        Format::Text => {}
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("STATE", Align::Left),
        ("ENGINE", Align::Right),
        ("EXIT", Align::Right),
        ("CLIENT", Align::Right),
        ("SUBMITTED", Align::Left),
        ("COMMAND", Align::Left),
    ]);
    let now = warren_proto::now_us();
    for task in &page.tasks {
        table.row(vec![
            task.id.to_string(),
            task.state().label().to_owned(),
            engine_text(task.engine_id),
            exit_text(task),
            // Who submitted it: a task outlives a client killed without a word.
            task.submitter_pid.to_string(),
            time::ago(task.submitted_us, now),
            command_text(task, 60),
        ]);
    }
    table.print();
    if let Some(token) = page.next_page_token {
        eprintln!("warren: more tasks: add --page-token {token} for the next page");
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

fn exit_text(task: &TaskInfo) -> String {
    match task.result.as_ref().and_then(|r| r.exit) {
        Some(task_result::Exit::ExitCode(code)) => code.to_string(),
        Some(task_result::Exit::Signal(signal)) => warren_proto::os::signals::describe(signal),
        None => "-".into(),
    }
}

fn command_text(task: &TaskInfo, width: usize) -> String {
    let text = match task.spec.as_ref().and_then(|s| s.command.as_ref()) {
        Some(task_spec::Command::Argv(argv)) => argv.args.join(" "),
        Some(task_spec::Command::Script(script)) => format!("sh -c {script:?}"),
        Some(task_spec::Command::Code(code)) => match task.session_id {
            0 => format!("cell {code:?}"),
            session => format!("cell in session {session}: {code:?}"),
        },
        None => String::new(),
    };
    if text.chars().count() > width {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Prints one task's record (`GetTask`'s reply with --json, nothing with -q) and exits with
/// the task's status.
pub(crate) async fn result(client: &Client, task: u64, format: Format) -> anyhow::Result<u8> {
    let info = client.task(task).await?;
    let status = info
        .result
        .clone()
        .map_or(0, |result| exit_code_of(&Outcome::from(result)));
    match format {
        Format::Json => {
            print_json(&info)?;
            return Ok(status);
        }
        Format::Quiet => return Ok(status),
        Format::Text => {}
    }
    let result = info.result.as_ref();
    let mut state = info.state().label().to_owned();
    if info.attempts.len() > 1 || info.retries > 0 {
        let number = result.map_or(info.attempts.len() as u32, |r| r.attempt);
        state.push_str(&format!(
            " on attempt {number} ({} {} allowed)",
            info.retries,
            if info.retries == 1 {
                "retry"
            } else {
                "retries"
            }
        ));
    }
    println!("task       {}", info.id);
    println!("state      {state}");
    if !info.reason.is_empty() {
        println!("reason     {}", info.reason);
    }
    println!("engine     {}", engine_text(info.engine_id));
    println!("command    {}", command_text(&info, 200));
    println!("exit       {}", exit_text(&info));
    println!("submitted  {}", time::local_us(info.submitted_us));
    if let Some(result) = result {
        if result.started_us > 0 {
            println!("started    {}", time::local_us(result.started_us));
        }
        println!("ended      {}", time::local_us(result.finished_us));
        if result.started_us > 0 && result.finished_us >= result.started_us {
            let micros = (result.finished_us - result.started_us) as u64;
            println!(
                "ran for    {}",
                time::duration(Duration::from_micros(micros))
            );
        }
    }
    println!(
        "submitter  uid {} pid {}",
        info.submitter_uid, info.submitter_pid
    );
    println!(
        "output     {} bytes in {} events",
        info.output_bytes, info.next_seq
    );
    if info.output_bytes_dropped > 0 {
        println!(
            "not kept   {} bytes (past the hub's output cap)",
            info.output_bytes_dropped
        );
    }
    if !info.labels.is_empty() {
        let mut labels: Vec<_> = info
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        println!("labels     {}", labels.join(", "));
    }
    if !info.attempts.is_empty() {
        let several = info.attempts.len() > 1;
        println!(
            "attempts{}",
            if several {
                "   (* marks the one that ended the task)"
            } else {
                ""
            }
        );
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("ENGINE", Align::Right),
            ("HOST", Align::Left),
            ("PLACED", Align::Left),
            ("ENDED", Align::Left),
            ("OUTCOME", Align::Left),
        ]);
        for attempt in &info.attempts {
            let last = several && result.is_some_and(|r| r.attempt == attempt.number);
            table.row(vec![
                format!("{}{}", if last { "*" } else { "" }, attempt.number),
                engine_text(attempt.engine_id),
                attempt.hostname.clone(),
                time::local_us(attempt.assigned_us),
                if attempt.ended_us > 0 {
                    time::local_us(attempt.ended_us)
                } else {
                    "-".into()
                },
                if attempt.outcome.is_empty() {
                    "-".into()
                } else {
                    attempt.outcome.clone()
                },
            ]);
        }
        for line in table.render().lines() {
            println!("  {line}");
        }
    }
    Ok(status)
}

/// Sends a signal to tasks; exits 1 if an id is unknown or a task has not started yet (the
/// signal reached nothing that will run). A task that already ended is not a failure.
pub(crate) async fn interrupt(client: &Client, tasks: &[u64], signal: i32) -> anyhow::Result<u8> {
    let reply = client.interrupt(tasks, signal).await?;
    let name = warren_proto::os::signals::describe(signal);
    for id in &reply.signalled {
        println!("task {id}: sent {name}");
    }
    for id in &reply.already_final {
        eprintln!("warren: task {id} had already ended; nothing sent");
    }
    for id in &reply.not_running {
        eprintln!("warren: task {id} has not started yet; nothing sent");
    }
    for id in &reply.not_found {
        eprintln!("warren: there is no task {id} (`warren tasks` lists them)");
    }
    Ok(u8::from(
        !reply.not_running.is_empty() || !reply.not_found.is_empty(),
    ))
}

/// Aborts tasks; exits 1 if an id is unknown. A task that already ended is not a failure.
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
        eprintln!("warren: task {id} had already ended; nothing to do");
    }
    for id in &reply.not_found {
        eprintln!("warren: there is no task {id} (`warren tasks` lists them)");
    }
    Ok(u8::from(!reply.not_found.is_empty()))
}
