//! `warren cluster start`: a hub and N engines on this machine, in the foreground, or detached
//! (`--daemon`, see `daemon`), and `warren cluster stop` for a detached one.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use warren::{Client, ClientBuilder, Job};
use warren_proto::connection::{self, ConnectionInfo};

use crate::cli::{ClusterArgs, HubArgs, shell_word, socket_hint};
use crate::follow::Follower;

/// How long the hub and engines get to come up.
const START_LIMIT: Duration = Duration::from_secs(15);
/// How long they get to stop when asked by the hub.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long one that did not stop gets after SIGTERM, before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

const POLL: Duration = Duration::from_millis(5);

/// Stops the cluster `cluster start --daemon` started on the socket the flags name.
pub(crate) async fn stop(hub_args: &HubArgs) -> anyhow::Result<u8> {
    let (socket, _) = own_socket(hub_args)?;
    crate::daemon::stop(&socket).await
}

/// The socket (absolute) and key file of a cluster of our own: `--socket` (or WARREN_SOCKET),
/// or the socket of a hub named with --hub (or WARREN_HUB), else the default socket. The config
/// file's default hub is not used: it may be any hub, and this is about one we start.
fn own_socket(hub_args: &HubArgs) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let flags = hub_args.flags();
    if flags.connection_file.is_some() || flags.remote.is_some() {
        return Err(crate::usage_error(
            "cluster start and stop are about a hub of their own, on --socket (or the default socket); --connection-file and --remote name another hub's",
        ));
    }
    // Only the socket and key matter here, from the flags or else the environment; a hub named
    // with --hub (or WARREN_HUB) gives its own, but not the config file's default, which may
    // be any hub: this command starts one of its own.
    let mut locator = hub_args.locator();
    if locator.hub.is_some() {
        locator = locator
            .expand()
            .map_err(|err| crate::explain_locate_error(hub_args, err))?
            .locator;
        if locator.connection_file.is_some() || locator.remote.is_some() {
            return Err(crate::usage_error(
                "cluster start starts a hub of its own, on a socket; the hub named by --hub (or WARREN_HUB) is given by a connection file or a host. Name one with a socket (and key_file), or use --socket",
            ));
        }
    }
    let socket = std::path::absolute(
        locator
            .socket
            .clone()
            .unwrap_or_else(connection::default_socket),
    )?;
    Ok((socket, locator.key_file))
}

/// Starts the cluster, runs the optional command, and waits for Ctrl-C or the hub to stop.
pub(crate) async fn start(hub_args: &HubArgs, args: &ClusterArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let (socket, key_file) = own_socket(hub_args)?;
    let connection_file = connection::connection_file_for(&socket);
    let warren = socket_hint(&socket);
    // Before anything starts: a hub that answers here is someone's running cluster.
    if let Some(pid) = crate::daemon::running(&crate::daemon::Files::beside(&socket)) {
        bail!(
            "a cluster started with --daemon already runs on {} (pid {pid}); nothing was started. Use it, stop it with `{warren} cluster stop`, or choose another --socket",
            socket.display()
        );
    }
    if warren::ping(&socket).await.is_ok() {
        let pid = ConnectionInfo::load(&connection_file)
            .ok()
            .filter(|info| info.hub_pid != 0)
            .map_or_else(String::new, |info| format!(" (pid {})", info.hub_pid));
        bail!(
            "a hub{pid} is already running on {}; nothing was started. Use it, stop it with `{warren} shutdown`, or choose another --socket",
            socket.display()
        );
    }
    if args.daemon {
        return crate::daemon::start(&socket, args.engines).await;
    }
    // Before any child exists: a Ctrl-C from now on stops them all.
    use tokio::signal::unix::{SignalKind, signal};
    let stop_signals = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );

    let mut hub = child_command("warren-hub")?;
    hub.arg("--socket").arg(&socket);
    if let Some(key_file) = &key_file {
        hub.arg("--key-file").arg(key_file);
    }
    // The hub's own settings from the environment travel as flags too.
    for (var, flag) in [
        ("WARREN_DB", "--db"),
        ("WARREN_SIGNATURE_WINDOW", "--signature-window"),
    ] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            hub.arg(flag).arg(value);
        }
    }
    let mut hub = hub.spawn().context("cannot start warren-hub")?;
    tracing::info!(pid = hub.id(), socket = %socket.display(), "started warren-hub");
    let client = wait_for_hub(&connection_file, &mut hub).await?;

    let mut engines = Vec::new();
    for _ in 0..args.engines {
        let engine = child_command("warren-engine")?
            .arg("--connection-file")
            .arg(&connection_file)
            .arg("--slots")
            .arg(args.slots.to_string())
            .spawn()
            .context("cannot start warren-engine");
        match engine {
            Ok(engine) => {
                tracing::info!(pid = engine.id(), "started warren-engine");
                engines.push(engine)
            }
            Err(err) => {
                stop_children(&client, &mut hub, &mut engines).await;
                return Err(err);
            }
        }
    }
    // A detached cluster's pid file: written once it is up, removed after everything stopped.
    let mut pid_file = None;
    let outcome = serve(
        &client,
        (&mut hub, &mut engines),
        args,
        &socket,
        started,
        stop_signals,
        &mut pid_file,
    )
    .await;
    stop_children(&client, &mut hub, &mut engines).await;
    drop(pid_file);
    outcome
}

/// A hub or engine to start: warren's own variables are not passed on (the child gets what
/// it needs as flags, and its tasks should not see them; an engine's uuid and spill directory
/// can't be shared by several engines anyway), nor is a log level put into its environment,
/// where every task would see it: `--log warn` unless RUST_LOG is already set.
fn child_command(name: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(sibling_binary(name)?);
    warren_proto::os::child::die_with_parent(command.as_std_mut());
    for var in warren_proto::OWN_ENV_VARS {
        command.env_remove(var);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.arg("--log").arg("warn");
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    Ok(command)
}

async fn serve(
    client: &Client,
    (hub, engines): (&mut Child, &mut [Child]),
    args: &ClusterArgs,
    socket: &Path,
    started: Instant,
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    pid_file: &mut Option<crate::daemon::PidFile>,
) -> anyhow::Result<u8> {
    wait_for_engines(client, engines, args.engines as usize).await?;
    let connection_file = connection::connection_file_for(socket);
    let warren = socket_hint(socket);
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
    println!("  run something    {warren} exec --all -- uname -a");
    println!(
        "  from elsewhere   warren tunnel THIS_HOST --remote-socket {}   (then warren --remote THIS_HOST ...)",
        shell_word(&socket.display().to_string())
    );
    // Detached, a hang-up of the terminal it came from is not a reason to stop.
    let _hangup = if args.daemon_child {
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        )?)
    } else {
        None
    };
    if args.daemon_child {
        println!("  stop             {warren} cluster stop");
        *pid_file = Some(crate::daemon::ready(&crate::daemon::Files::beside(socket))?);
    } else {
        println!("  stop             Ctrl-C here, or {warren} shutdown");
    }
    let mut status = 0;
    if !args.command.is_empty() {
        let job = Job::argv(args.command.clone()).all();
        let expected = client.engines().await.map_or(2, |e| e.len());
        let events = client.run(job).await?;
        // Our own hub: if it goes, the cluster is over; nothing to reconnect to.
        let ours = HubArgs {
            socket: Some(socket.to_owned()),
            ..HubArgs::default()
        };
        let follower = Follower::new(&ours, crate::output::Printer::new(expected), Duration::ZERO);
        status = follower.run(client.clone(), events).await?;
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

/// Asks our hub (the client holds its key) to stop everything, then makes sure every child
/// is gone: SIGTERM for what is left (an engine still starting cleans up after itself), then
/// SIGKILL.
async fn stop_children(client: &Client, hub: &mut Child, engines: &mut [Child]) {
    let _ = client.shutdown(true).await;
    let deadline = tokio::time::Instant::now() + STOP_LIMIT;
    for child in std::iter::once(hub).chain(engines.iter_mut()) {
        if tokio::time::timeout_at(deadline, child.wait())
            .await
            .is_ok()
        {
            continue;
        }
        if let Some(pid) = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(TERM_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// Waits until our hub, and not another, serves: its connection file names its pid.
async fn wait_for_hub(connection_file: &Path, hub: &mut Child) -> anyhow::Result<Client> {
    let deadline = Instant::now() + START_LIMIT;
    let pid = hub.id().unwrap_or(0);
    loop {
        if let Some(status) = hub.try_wait()? {
            bail!("warren-hub exited ({status}) before it was ready; its message is above");
        }
        let ours = ConnectionInfo::load(connection_file)
            .ok()
            .filter(|info| info.hub_pid == pid);
        if let Some(info) = ours
            && let Ok(client) = ClientBuilder::new()
                .socket(&info.socket)
                .signer(info.signer()?)
                .connect()
                .await
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
