//! `warren`: the command line for a warren hub, built on the `warren` SDK.

mod cli;
mod cluster;
mod commands;
mod cp;
mod daemon;
mod doctor;
mod follow;
mod foreground;
mod format;
mod map;
mod output;
mod px;
mod remote_engines;
mod session;
mod shell;
mod signals;
mod slurm;
mod ssh;
mod table;
mod terminal;
mod time;
mod tunnel;
mod wait;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use warren::{Client, ClientBuilder, Job};
use warren_proto::connection::ConnectionInfo;
use warren_proto::locate::LocateError;

use crate::cli::{Cli, ClusterAction, Command, EnginesAction, Format, HubArgs};

/// What `warren` exits with when it, not a task, failed (as ssh does).
const EXIT_WARREN_FAILED: u8 = 255;
/// What `warren` exits with for a usage error (EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    warren_proto::os::program::keep_freed_memory();
    let (cli, name) = match parse() {
        Ok(parsed) => parsed,
        Err(err) => return usage_exit(&err),
    };
    warren_proto::os::program::start_logging(Some(&cli.output.log_filter()));
    if let Err(usage) = format::check(&cli.command, cli.output.format(), &name) {
        return usage_exit(&usage);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warren: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_WARREN_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<clap::Error>() {
            Some(usage) => usage_exit(usage),
            None => {
                eprintln!("warren: {}", one_line(&err));
                ExitCode::from(EXIT_WARREN_FAILED)
            }
        },
    }
}

/// The command line, and the command's name as typed (`engines stop`), for messages.
fn parse() -> Result<(Cli, String), clap::Error> {
    let matches = Cli::command().try_get_matches()?;
    let mut name = Vec::new();
    let mut level = &matches;
    while let Some((sub, next)) = level.subcommand() {
        name.push(sub.to_owned());
        level = next;
    }
    Ok((Cli::from_arg_matches(&matches)?, name.join(" ")))
}

/// Prints clap's message; 64 for a usage error, 0 for `--help` and `--version`.
fn usage_exit(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// A usage error found after parsing, reported as clap reports its own (exit 64).
pub(crate) fn usage_error(message: impl std::fmt::Display) -> anyhow::Error {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .into()
}

/// An error and its causes on one line, each said once: a cause whose text the line already
/// holds (a wrapper that quotes its source) is left out.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Output piped into something that stopped reading (`| head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let hub = &cli.hub;
    let format = cli.output.format();
    match &cli.command {
        Command::Sign { method } => sign(hub, method).await,
        Command::Cluster {
            action: ClusterAction::Start(args),
        } => cluster::start(hub, args).await,
        Command::Cluster {
            action: ClusterAction::Stop,
        } => cluster::stop(hub).await,
        Command::Exec(args) => {
            let job = commands::job(Job::argv(args.argv.clone()), &args.run)?;
            commands::run(hub, &connect(hub).await?, job, &args.run, format).await
        }
        Command::Sh(args) => {
            let job = commands::job(Job::script(args.script.clone()), &args.run)?;
            commands::run(hub, &connect(hub).await?, job, &args.run, format).await
        }
        Command::Shell(args) => commands::shell(hub, &connect(hub).await?, args).await,
        Command::Engines { action: None } => commands::engines(&connect(hub).await?, format).await,
        Command::Engines {
            action: Some(EnginesAction::Ssh(args)),
        } => {
            let info = connection_info(hub)?;
            let client = connect(hub).await?;
            remote_engines::run(&client, info, args).await
        }
        Command::Engines {
            action: Some(EnginesAction::Slurm(args)),
        } => slurm::run(hub, args).await,
        Command::Engines {
            action: Some(EnginesAction::SlurmNode(args)),
        } => slurm::node(args).await,
        Command::Engines {
            action: Some(EnginesAction::Stop { ids }),
        } => {
            for id in connect(hub).await?.shutdown_engines(ids).await? {
                println!("engine {id}: told to stop");
            }
            Ok(0)
        }
        Command::Tasks(args) => commands::tasks(&connect(hub).await?, args, format).await,
        Command::Result(args) => wait::result(&connect(hub).await?, args, format).await,
        Command::Wait(args) => wait::wait(&connect(hub).await?, args).await,
        Command::Map(args) => map::run(hub, args).await,
        Command::Attach {
            task,
            from,
            input,
            reconnect,
        } => {
            let client = connect(hub).await?;
            let printer = if format == Format::Json {
                output::Printer::json()
            } else if *input {
                output::Printer::new(1).input_only()
            } else {
                output::Printer::new(1)
            };
            follow::attach(
                hub,
                &client,
                *task,
                *from,
                printer,
                reconnect.reconnect_timeout,
            )
            .await
        }
        Command::Interrupt { tasks, signal } => {
            commands::interrupt(&connect(hub).await?, tasks, *signal).await
        }
        Command::Abort { tasks } => commands::abort(&connect(hub).await?, tasks).await,
        Command::Queue => commands::queue(&connect(hub).await?, format).await,
        Command::Purge(args) => commands::purge(&connect(hub).await?, args).await,
        Command::Shutdown { keep_engines } => {
            connect(hub).await?.shutdown(!keep_engines).await?;
            println!("warren: the hub is shutting down");
            Ok(0)
        }
        Command::Ping => {
            let locator = hub.locator();
            let socket = match &locator.socket {
                Some(socket) => socket.clone(),
                None => connection_info(hub)?.socket,
            };
            warren::ping(&socket).await?;
            match format {
                // grpc.health.v1.Health/Check's reply, as grpcurl prints it.
                Format::Json => format::print_json(&serde_json::json!({"status": "SERVING"}))?,
                Format::Quiet => {}
                Format::Text => {
                    println!("warren: a hub is serving on {}", socket.display())
                }
            }
            Ok(0)
        }
        Command::Tunnel(args) => tunnel::run(args, hub).await,
        Command::Cp(args) => {
            let quiet = format == Format::Quiet;
            cp::run(&connect(hub).await?, args, quiet).await
        }
        Command::Doctor => doctor::run(hub, format).await,
        Command::Completions { shell } => shell::completions(*shell),
        Command::Man { dir } => shell::man(dir.as_deref()),
        Command::Version => commands::version(&connect(hub).await?, format).await,
        Command::Session { action } => session::run(&connect(hub).await?, action, format).await,
        Command::Px(args) => px::run(&connect(hub).await?, args).await,
    }
}

/// The hub's connection, by the rule every warren program shares
/// (`warren_proto::locate::Locator`), with an error that says what to do.
pub(crate) fn connection_info(hub: &HubArgs) -> anyhow::Result<ConnectionInfo> {
    hub.locator()
        .resolve()
        .map_err(|err| explain_locate_error(hub, err))
}

/// Why the flags (or the environment) lead to no hub, and what to do about it.
pub(crate) fn explain_locate_error(hub: &HubArgs, err: LocateError) -> anyhow::Error {
    let expanded = hub.locator().expand().ok();
    let remote = expanded.as_ref().and_then(|e| e.locator.remote.clone());
    let named = expanded
        .and_then(|e| e.hub)
        .filter(|named| named.entry.is_remote());
    match (&err, &remote) {
        (LocateError::ConnectionFile { .. }, Some(name)) if err.is_not_found() => match named {
            Some(named) => anyhow::anyhow!(
                "hub {} is on {} and its tunnel is not up; start it with `warren --hub {} tunnel` (add --background to keep it running)",
                named.name,
                named.entry.host.unwrap_or_default(),
                named.name
            ),
            None => anyhow::anyhow!(
                "no tunnel called {name} is up; start one with `warren tunnel HOST --name {name}`"
            ),
        },
        (LocateError::Config(_), _) => anyhow::anyhow!("{err}"),
        (LocateError::ConnectionFile { path, .. }, None) if err.is_not_found() => anyhow::anyhow!(
            "no connection file at {} (is a hub running? Start one with `warren cluster start`, or point --socket or --connection-file at a running hub's)",
            path.display()
        ),
        (LocateError::ConnectionFile { .. }, _) => {
            anyhow::anyhow!("cannot use the connection file: {err}")
        }
        (LocateError::Key(_), _) => anyhow::anyhow!("cannot use the key file: {err}"),
        _ => usage_error(&err),
    }
}

/// The client settings the flags (or the environment) give.
pub(crate) fn client_builder(hub: &HubArgs) -> ClientBuilder {
    log_where(hub);
    ClientBuilder::new().locator(hub.locator())
}

/// Says (at `-v`) where the hub was looked for, and why there.
fn log_where(hub: &HubArgs) {
    let given = hub.flags();
    let from = if !given.is_empty() {
        "the flags"
    } else if !warren_proto::locate::Locator::from_env().is_empty() {
        "the environment"
    } else {
        "the defaults"
    };
    match hub.locator().expand() {
        Ok(expanded) => {
            if let Some(named) = &expanded.hub {
                let how = if named.by_default {
                    "the default hub"
                } else {
                    "hub"
                };
                tracing::info!(
                    "{how} {} from {}, as {from} say",
                    named.name,
                    named.config_file.display()
                );
            }
            let file = expanded.locator.connection_file();
            tracing::info!(
                connection_file = %file.as_deref().map_or_else(|| "none".into(), |f| f.display().to_string()),
                socket = %expanded.locator.socket.as_deref().map_or_else(|| "the connection file's".into(), |s| s.display().to_string()),
                key_file = %expanded.locator.key_file.as_deref().map_or_else(|| "the connection file's".into(), |k| k.display().to_string()),
                "finding the hub by {from}"
            );
        }
        Err(err) => tracing::debug!(%err, "the config file can't be used"),
    }
}

/// A client for the hub the flags (or the environment) name, found afresh each call.
pub(crate) async fn connect(hub: &HubArgs) -> anyhow::Result<Client> {
    client_builder(hub)
        .connect()
        .await
        .map_err(|err| explain_connect_error(hub, err))
}

/// A connection error, with the advice of [`explain_locate_error`] when no hub was found.
pub(crate) fn explain_connect_error(hub: &HubArgs, err: warren::Error) -> anyhow::Error {
    match err {
        warren::Error::ConnectionFile { path, source } => explain_locate_error(
            hub,
            LocateError::ConnectionFile {
                path,
                error: source,
            },
        ),
        warren::Error::Key(err) => explain_locate_error(hub, LocateError::Key(err)),
        warren::Error::Locate(err) => explain_locate_error(hub, err),
        other => other.into(),
    }
}

/// Prints `authorization: ...` for one call of `method`.
async fn sign(hub: &HubArgs, method: &str) -> anyhow::Result<u8> {
    let method = if method.starts_with('/') {
        method.to_owned()
    } else {
        format!("/{method}")
    };
    let valid = method[1..].split_once('/').is_some_and(|(service, name)| {
        service.contains('.') && !name.is_empty() && !name.contains('/')
    });
    if !valid {
        return Err(usage_error(format!(
            "`{method}` is not a gRPC method path; write it like /warren.v1.Control/ListEngines"
        )));
    }
    let info = connection_info(hub)?;
    let signer = info.signer()?;
    if signer.hub_id().is_empty() {
        // Only a key: one signed call teaches the signer (and its clones) the id of the hub's
        // current start.
        ClientBuilder::new()
            .socket(info.socket)
            .signer(signer.clone())
            .connect()
            .await?;
    }
    println!("{}: {}", warren_proto::auth::HEADER, signer.sign(&method));
    Ok(0)
}
