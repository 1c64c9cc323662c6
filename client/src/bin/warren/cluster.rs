//! `warren cluster start`: a hub and N engines on this machine, in the foreground.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use warren::{Client, Job};
use warren_proto::connection;

use crate::cli::{ClusterArgs, HubArgs};

/// How long the hub and engines get to come up.
const START_LIMIT: Duration = Duration::from_secs(15);
/// How long they get to stop before being killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

/// Starts the cluster, runs the optional command, and waits for Ctrl-C or the hub to stop.
pub(crate) async fn start(hub_args: &HubArgs, args: &ClusterArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let socket = std::path::absolute(
        hub_args
            .socket
            .clone()
            .unwrap_or_else(connection::default_socket),
    )?;
    let connection_file = connection::connection_file_for(&socket);
    let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    // Before any child exists: a Ctrl-C from now on stops them all.
    use tokio::signal::unix::{SignalKind, signal};
    let stop_signals = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );

    let mut hub = Command::new(sibling_binary("warren-hub")?);
    warren_proto::child::die_with_parent(hub.as_std_mut());
    let mut hub = hub
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", &log_level)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start warren-hub")?;
    let client = wait_for_hub(&connection_file, &mut hub).await?;

    let mut engines = Vec::new();
    for _ in 0..args.engines {
        let mut engine = Command::new(sibling_binary("warren-engine")?);
        warren_proto::child::die_with_parent(engine.as_std_mut());
        let engine = engine
            .arg("--connection-file")
            .arg(&connection_file)
            .arg("--slots")
            .arg(args.slots.to_string())
            .env("RUST_LOG", &log_level)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start warren-engine")?;
        engines.push(engine);
    }
    let outcome = serve(
        &client,
        &mut hub,
        &mut engines,
        args,
        &socket,
        started,
        stop_signals,
    )
    .await;
    stop(&client, &mut hub, &mut engines).await;
    outcome
}

async fn serve(
    client: &Client,
    hub: &mut Child,
    engines: &mut [Child],
    args: &ClusterArgs,
    socket: &Path,
    started: Instant,
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
) -> anyhow::Result<u8> {
    wait_for_engines(client, engines, args.engines as usize).await?;
    let connection_file = connection::connection_file_for(socket);
    println!(
        "warren: hub on {} with {} engine(s), ready in {:.2} s",
        socket.display(),
        args.engines,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  connection file  {} (mode 0600: it holds the key)",
        connection_file.display()
    );
    println!("  run something    warren exec --all -- uname -a");
    println!(
        "  from elsewhere   warren tunnel THIS_HOST --remote-socket {}   (then warren --remote THIS_HOST ...)",
        socket.display()
    );
    println!("  stop             Ctrl-C here, or warren shutdown");
    let mut status = 0;
    if !args.command.is_empty() {
        status = crate::commands::run(client, Job::argv(args.command.clone()).all(), false).await?;
    }
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        exit = hub.wait() => {
            println!("warren: the hub stopped ({})", exit.map_or_else(|e| e.to_string(), |s| s.to_string()));
        }
    }
    Ok(status)
}

/// Asks the hub to stop everything, then makes sure every child is gone.
async fn stop(client: &Client, hub: &mut Child, engines: &mut [Child]) {
    let _ = client.shutdown(true).await;
    let deadline = tokio::time::Instant::now() + STOP_LIMIT;
    for child in std::iter::once(hub).chain(engines.iter_mut()) {
        if tokio::time::timeout_at(deadline, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

async fn wait_for_hub(connection_file: &Path, hub: &mut Child) -> anyhow::Result<Client> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(status) = hub.try_wait()? {
            bail!("warren-hub exited ({status}) before it was ready; its message is above");
        }
        if connection_file.exists()
            && let Ok(client) = Client::connect(connection_file).await
        {
            return Ok(client);
        }
        if Instant::now() > deadline {
            bail!("warren-hub did not become ready within {START_LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_for_engines(
    client: &Client,
    engines: &mut [Child],
    wanted: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        for engine in engines.iter_mut() {
            if let Some(status) = engine.try_wait()? {
                bail!("a warren-engine exited ({status}) before registering; its message is above");
            }
        }
        if client.engines().await?.len() >= wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the engines did not register within {START_LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A warren binary: beside this one (as cargo builds them), else on PATH.
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|path| path.is_file());
    if let Some(path) = beside {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("cannot find {name} beside this warren or on PATH; build the workspace with `cargo build --release`"))
}
