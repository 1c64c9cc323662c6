//! `warren`: the command line for a warren hub.

mod cli;
mod cluster;
mod commands;
mod output;
mod remote_engines;
mod ssh;
mod tunnel;

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use warren::{Client, Job};
use warren_proto::auth::{Key, Signer};
use warren_proto::connection::{self, ConnectionInfo};

use crate::cli::{Cli, ClusterAction, Command, EnginesAction, HubArgs};

/// What `warren` exits with when it, not a task, failed (as ssh does).
const EXIT_WARREN_FAILED: u8 = 255;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage_error = err.use_stderr();
            let _ = err.print();
            return if usage_error {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
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
        Err(err) => {
            eprintln!("warren: {err:#}");
            ExitCode::from(EXIT_WARREN_FAILED)
        }
    }
}

/// Output piped into something that stopped reading (`| head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let hub = &cli.hub;
    match &cli.command {
        Command::Sign { method } => sign(hub, method).await,
        Command::Cluster {
            action: ClusterAction::Start(args),
        } => cluster::start(hub, args).await,
        Command::Exec(args) => {
            let job = commands::job(Job::argv(args.argv.clone()), &args.run)?;
            commands::run(&connect(hub).await?, job, args.run.detach).await
        }
        Command::Sh(args) => {
            let job = commands::job(Job::script(args.script.clone()), &args.run)?;
            commands::run(&connect(hub).await?, job, args.run.detach).await
        }
        Command::Engines { action: None } => commands::engines(&connect(hub).await?).await,
        Command::Engines {
            action: Some(EnginesAction::Ssh(args)),
        } => {
            let info = connection_info(hub)?;
            let client = connect(hub).await?;
            remote_engines::run(&client, info, args).await
        }
        Command::Engines {
            action: Some(EnginesAction::Stop { ids }),
        } => {
            for id in connect(hub).await?.shutdown_engines(ids).await? {
                println!("engine {id}: told to stop");
            }
            Ok(0)
        }
        Command::Tasks(args) => commands::tasks(&connect(hub).await?, args).await,
        Command::Result { task } => commands::result(&connect(hub).await?, *task).await,
        Command::Attach { task, from } => {
            commands::attach(&connect(hub).await?, *task, *from).await
        }
        Command::Interrupt { tasks, signal } => {
            commands::interrupt(&connect(hub).await?, tasks, signal).await
        }
        Command::Abort { tasks } => commands::abort(&connect(hub).await?, tasks).await,
        Command::Queue => commands::queue(&connect(hub).await?).await,
        Command::Purge(args) => commands::purge(&connect(hub).await?, args).await,
        Command::Shutdown { keep_engines } => {
            connect(hub).await?.shutdown(!keep_engines).await?;
            println!("warren: the hub is shutting down");
            Ok(0)
        }
        Command::Ping => {
            let socket = match &hub.socket {
                Some(socket) => socket.clone(),
                None => connection_info(hub)?.socket,
            };
            warren::ping(&socket).await?;
            println!("warren: a hub is serving on {}", socket.display());
            Ok(0)
        }
        Command::Tunnel(args) => tunnel::run(args).await,
        Command::Version => {
            let version = connect(hub).await?.version().await?;
            println!("warren     {}", warren_proto::VERSION);
            println!(
                "hub        {} (protocol {})",
                version.hub_version, version.protocol_version
            );
            println!("hub id     {}", version.hub_id);
            println!(
                "hub clock  {} (this machine: {})",
                version.hub_time,
                warren_proto::now_us() / 1_000_000
            );
            Ok(0)
        }
    }
}

/// The hub's connection, from the flags.
fn connection_info(hub: &HubArgs) -> anyhow::Result<ConnectionInfo> {
    if let (Some(socket), Some(key_file)) = (&hub.socket, &hub.key_file) {
        // The hub's id is not known yet: the first call learns it (see `learn_from_refusal`).
        let key = Key::load(key_file)?;
        return Ok(ConnectionInfo::new(socket.clone(), String::new(), &key, 0));
    }
    let file = match (&hub.remote, &hub.connection_file, &hub.socket) {
        (Some(name), _, _) => connection::remote_connection_file(name),
        (None, Some(file), _) => file.clone(),
        (None, None, Some(socket)) => connection::connection_file_for(socket),
        (None, None, None) => warren::default_connection_file(),
    };
    let mut info = ConnectionInfo::load(&file).with_context(|| match &hub.remote {
        Some(name) => format!("no tunnel called {name} is up (start one with `warren tunnel HOST --name {name}`)"),
        None => format!(
            "cannot use connection file {} (is a hub running? start one with `warren cluster start`)",
            file.display()
        ),
    })?;
    // --socket with a connection file: the file's key and id, reached through another socket
    // (an ssh forward of the hub's own).
    if hub.remote.is_none()
        && let Some(socket) = &hub.socket
    {
        info.socket = socket.clone();
    }
    Ok(info)
}

/// Where the hub is and how to sign for it, from the flags.
fn locate(hub: &HubArgs) -> anyhow::Result<(std::path::PathBuf, Signer)> {
    let info = connection_info(hub)?;
    let signer = info.signer()?;
    Ok((info.socket, signer))
}

async fn connect(hub: &HubArgs) -> anyhow::Result<Client> {
    let (socket, signer) = locate(hub)?;
    Ok(Client::connect_signed(&socket, signer).await?)
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
        anyhow::bail!(
            "`{method}` is not a gRPC method path; write it like /warren.v1.Control/ListEngines"
        );
    }
    let (socket, signer) = locate(hub)?;
    if signer.hub_id().is_empty() {
        // Only a key: one signed call teaches the signer the id of the hub's current start.
        Client::connect_signed(&socket, signer.clone()).await?;
    }
    println!("{}: {}", warren_proto::auth::HEADER, signer.sign(&method));
    Ok(0)
}
