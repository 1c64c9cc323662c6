//! `warren session open|ls|close|restart`: sessions, live interpreters on engines.

use warren::proto::{CloseSessionsReply, SessionInfo, SessionState};
use warren::{Client, SessionOptions};

use crate::cli::{Format, Interpreter, OpenArgs, SessionAction};
use crate::format::{print_ids, print_json};
use crate::table::{Align, Table};
use crate::time;

/// Runs `warren session ...`; `format` is the global `--json` or `-q` (open prints only ids
/// with -q; ls prints `ListSessionsReply` with --json, ids with -q).
pub(crate) async fn run(
    client: &Client,
    action: &SessionAction,
    format: Format,
) -> anyhow::Result<u8> {
    match action {
        SessionAction::Open(args) => open(client, args, format == Format::Quiet).await,
        SessionAction::Ls { name, all } => {
            list(client, name.as_deref().unwrap_or(""), *all, format).await
        }
        SessionAction::Close { targets } => {
            let (ids, groups) = split_targets(targets);
            let mut reply = CloseSessionsReply::default();
            if !ids.is_empty() {
                reply = client.close_sessions(&ids, "").await?;
            }
            for group in groups {
                let more = client.close_sessions(&[], &group).await?;
                reply.closed.extend(more.closed);
                reply.already_closed.extend(more.already_closed);
            }
            for id in reply.closed {
                println!("session {id}: closed");
            }
            for id in reply.already_closed {
                eprintln!("warren: session {id} was closed already");
            }
            Ok(0)
        }
        SessionAction::Restart { targets } => {
            let (mut ids, groups) = split_targets(targets);
            for group in groups {
                let sessions = client.list_sessions(&group, false).await?;
                if sessions.is_empty() {
                    anyhow::bail!(
                        "no open session is in group {group}; `warren session ls` lists them"
                    );
                }
                ids.extend(sessions.iter().map(|s| s.id));
            }
            let mut code = 0;
            for id in ids {
                let info = client.restart_session(id).await?;
                code |= u8::from(!info.state().is_live());
                print_opened(&info, false);
            }
            Ok(code)
        }
    }
}

/// Ids (numbers) and group names (the rest).
fn split_targets(targets: &[String]) -> (Vec<u64>, Vec<String>) {
    let mut ids = Vec::new();
    let mut groups = Vec::new();
    for target in targets {
        match target.parse::<u64>() {
            Ok(id) => ids.push(id),
            Err(_) => groups.push(target.clone()),
        }
    }
    (ids, groups)
}

async fn open(client: &Client, args: &OpenArgs, quiet: bool) -> anyhow::Result<u8> {
    let mut options = match args.kind {
        Interpreter::Python => SessionOptions::python(),
        Interpreter::Bash => SessionOptions::bash(),
        Interpreter::Custom => {
            if args.argv.is_empty() {
                return Err(crate::usage_error(
                    "--kind custom needs the adapter's command after `--`: warren session open --kind custom -- PROGRAM [ARGS...]",
                ));
            }
            SessionOptions::custom(args.argv.clone())
        }
    };
    if args.kind != Interpreter::Custom && !args.argv.is_empty() {
        options = options.interpreter(args.argv.clone());
    }
    options = if args.all {
        options.all()
    } else if !args.engines.is_empty() {
        options.engines(args.engines.iter().copied())
    } else {
        options.any()
    };
    for (key, value) in &args.engine_labels {
        options = options.on_engines_labelled(key, value);
    }
    for (name, value) in &args.env {
        options = options.env(name, value);
    }
    if let Some(dir) = &args.cwd {
        options = options.cwd(dir.clone());
    }
    if let Some(name) = &args.name {
        options = options.name(name.clone());
    }
    let (group, sessions) = client.open_sessions(options).await?;
    if !quiet {
        println!("group {group}");
    }
    let mut code = 0;
    for session in &sessions {
        let info = session.info();
        code |= u8::from(!info.state().is_live());
        print_opened(info, quiet);
    }
    Ok(code)
}

/// One line for a session just opened (or restarted); why, on stderr, if it did not start.
fn print_opened(info: &SessionInfo, quiet: bool) {
    if quiet {
        println!("{}", info.id);
    } else {
        let what = match info.state() {
            SessionState::Idle | SessionState::Busy => info.banner.clone(),
            state => state.label().to_owned(),
        };
        println!("session {} on engine {}: {what}", info.id, info.engine_id);
    }
    if !info.state().is_live() {
        eprintln!("warren: session {} did not start: {}", info.id, info.reason);
    }
}

async fn list(client: &Client, group: &str, all: bool, format: Format) -> anyhow::Result<u8> {
    let sessions = client.list_sessions(group, all).await?;
    match format {
        Format::Json => {
            print_json(&warren::proto::ListSessionsReply { sessions })?;
            return Ok(0);
        }
        Format::Quiet => {
            print_ids(sessions.iter().map(|s| s.id))?;
            return Ok(0);
        }
        Format::Text => {}
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("GROUP", Align::Left),
        ("ENGINE", Align::Right),
        ("KIND", Align::Left),
        ("STATE", Align::Left),
        ("CELLS", Align::Right),
        ("PID", Align::Right),
        ("OPENED", Align::Left),
        ("INFO", Align::Left),
    ]);
    for s in &sessions {
        let kind = s.spec.as_ref().map_or("-", |spec| spec.kind().label());
        let info = match s.state() {
            SessionState::Dead | SessionState::Closed => s.reason.clone(),
            _ => s.banner.clone(),
        };
        table.row(vec![
            s.id.to_string(),
            s.group.clone(),
            s.engine_id.to_string(),
            kind.to_owned(),
            s.state().label().to_owned(),
            s.cells.len().to_string(),
            if s.pid == 0 {
                "-".into()
            } else {
                s.pid.to_string()
            },
            time::local_us(s.opened_us),
            info,
        ]);
    }
    table.print();
    Ok(0)
}
