//! `warren tunnel`: a hub on another machine, reached through `ssh -L` of its Unix socket.
//!
//! The remote connection file comes over ssh's stdout (`warren-hub --print-connection`), so
//! the key is never in an argv or in a file others can read; the local copy points at the
//! local end of the forward, a socket ssh creates with mode 0600 in our 0700 runtime
//! directory. The forward is restarted with backoff whenever ssh dies, until Ctrl-C or
//! `warren tunnel --stop NAME`; then the local socket and connection file are removed.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use warren_proto::connection::{self, ConnectionInfo};

use crate::cli::{HubArgs, TunnelArgs};
use crate::daemon::spawn_detached;
use crate::ssh::{Ssh, forward_ready, quote};

/// How long the forward may take to come up.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// The longest wait between restarts of ssh.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a running tunnel checks that its key still opens the remote hub (a restarted hub
/// has a new one).
const KEY_CHECK: Duration = Duration::from_secs(2);

/// The files that belong to one tunnel.
struct Paths {
    socket: PathBuf,
    connection: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

impl Paths {
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir = connection::remote_dir();
        warren_proto::os::private_dir::prepare(&dir)?;
        Ok(Self {
            socket: dir.join(format!("{name}.sock")),
            connection: connection::remote_connection_file(name),
            pid: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.log")),
        })
    }
}

/// Removes a tunnel's files when it ends, however it ends.
struct Cleanup<'a>(&'a Paths);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for path in [&self.0.socket, &self.0.connection, &self.0.pid] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One tunnel: where to, under which name, and how to run ssh and the hub there.
pub(crate) struct Plan {
    /// The machine, as ssh names it.
    pub(crate) host: String,
    /// The tunnel's name (`--remote NAME`; a named hub's name).
    pub(crate) name: String,
    /// The hub's socket there, if not the default.
    pub(crate) remote_socket: Option<String>,
    /// How to run `warren-hub` there.
    pub(crate) remote_hub_command: String,
    /// The ssh command.
    pub(crate) ssh: String,
}

impl Plan {
    /// The tunnel the flags describe, completed by the config file's hub when HOST names one
    /// with a `host`, or else when --hub (WARREN_HUB, the file's default) does: flags win over
    /// the file, and `WARREN_SSH` counts as the --ssh flag.
    pub(crate) fn new(args: &TunnelArgs, hub: &HubArgs) -> anyhow::Result<Self> {
        let named = match &args.host {
            Some(host) => {
                let (config, _) = warren_proto::config::Config::load()?;
                config
                    .hubs
                    .get(host)
                    .filter(|entry| entry.is_remote())
                    .map(|entry| (host.clone(), entry.clone()))
            }
            None => hub
                .locator()
                .expand()
                .map_err(|err| crate::explain_locate_error(hub, err))?
                .hub
                .filter(|named| named.entry.is_remote())
                .map(|named| (named.name, named.entry)),
        };
        let (name, entry) = named.unzip();
        let entry = entry.unwrap_or_default();
        let host = match (&entry.host, &args.host) {
            (Some(host), _) => host.clone(),
            (None, Some(host)) => host.clone(),
            (None, None) => bail!(
                "give the host to tunnel to, or --hub NAME of a hub with a `host` in the config file"
            ),
        };
        Ok(Self {
            name: args
                .name
                .clone()
                .or(name)
                .unwrap_or_else(|| default_name(&host)),
            remote_socket: args.remote_socket.clone().or(entry.remote_socket),
            remote_hub_command: args
                .remote_hub_command
                .clone()
                .or(entry.remote_hub_command)
                .unwrap_or_else(|| "warren-hub".to_owned()),
            ssh: args
                .ssh
                .command
                .clone()
                .or(entry.ssh)
                .unwrap_or_else(|| "ssh".to_owned()),
            host,
        })
    }
}

/// Runs `warren tunnel`.
pub(crate) async fn run(args: &TunnelArgs, hub: &HubArgs) -> anyhow::Result<u8> {
    if let Some(name) = &args.stop {
        return stop(name).await;
    }
    let plan = Plan::new(args, hub)?;
    let name = plan.name.clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "tunnel name `{name}` may only have letters, digits, `.`, `_` and `-`; pick one with --name"
        );
    }
    let paths = Paths::new(&name)?;
    if let Some(pid) = running_pid(&paths.pid) {
        bail!("tunnel {name} already runs (pid {pid}); stop it with `warren tunnel --stop {name}`");
    }
    if args.background {
        return background(&paths, &name).await;
    }
    foreground(&plan, &paths).await
}

/// The tunnel's name when none is given: the host without the user.
fn default_name(host: &str) -> String {
    host.rsplit('@')
        .next()
        .unwrap_or(host)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The pid in a tunnel's pid file, if that process is alive.
fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Starts this same command without `--background`, detached, and waits for it to be ready.
async fn background(paths: &Paths, name: &str) -> anyhow::Result<u8> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--background")
        .collect();
    let mut child = spawn_detached(&args, &paths.log, "the background tunnel")?;
    let deadline = Instant::now() + READY_LIMIT * 2;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
            bail!("the tunnel stopped ({status}):\n{}", log.trim_end());
        }
        if paths.connection.exists() && warren::ping(&paths.socket).await.is_ok() {
            println!(
                "warren: tunnel {name} is up in the background (pid {}); use it with `warren --remote {name} ...`, stop it with `warren tunnel --stop {name}`",
                child.id().unwrap_or(0)
            );
            return Ok(0);
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            bail!(
                "the tunnel did not come up in time; see {}",
                paths.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a background tunnel and waits for it to clean up.
async fn stop(name: &str) -> anyhow::Result<u8> {
    let paths = Paths::new(name)?;
    let Some(pid) = running_pid(&paths.pid) else {
        bail!("no tunnel called {name} is running");
    };
    let target = rustix::process::Pid::from_raw(pid as i32).context("bad pid file")?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal the tunnel (pid {pid})"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("warren: tunnel {name} stopped");
    Ok(0)
}

/// Runs the tunnel in this process until a signal asks it to stop.
async fn foreground(plan: &Plan, paths: &Paths) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let (host, name) = (plan.host.as_str(), plan.name.as_str());
    let ssh = Ssh::parse(&plan.ssh)?;
    warren_proto::private_file::write(&paths.pid, format!("{}\n", std::process::id()).as_bytes())?;
    let _cleanup = Cleanup(paths);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;

    let mut backoff = Duration::from_millis(250);
    let mut first = true;
    loop {
        let attempt = async {
            let remote = fetch_connection(&ssh, plan).await?;
            save_local(&remote, paths)?;
            let _ = std::fs::remove_file(&paths.socket);
            let forward = format!("{}:{}", paths.socket.display(), remote.socket.display());
            let mut child = ssh
                .command(
                    &[
                        "-N",
                        "-o",
                        "ExitOnForwardFailure=yes",
                        "-o",
                        "StreamLocalBindUnlink=yes",
                        "-L",
                        &forward,
                    ],
                    host,
                )
                .stdin(Stdio::null())
                .spawn()
                .context("cannot start ssh")?;
            wait_ready(&mut child, &paths.socket).await?;
            anyhow::Ok((child, remote))
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = interrupt.recv() => return Ok(0),
            _ = terminate.recv() => return Ok(0),
            _ = hangup.recv() => return Ok(0),
        };
        match outcome {
            Ok((mut child, remote)) => {
                if first {
                    println!(
                        "warren: tunnel {name}: {} -> {host}:{}; use it with `warren --remote {name} ...`, Ctrl-C to stop",
                        paths.socket.display(),
                        remote.socket.display()
                    );
                }
                first = false;
                backoff = Duration::from_millis(250);
                let mut current = remote;
                let exit = loop {
                    // In the select, so that ssh's exit or a signal cuts a slow check short.
                    let check = async {
                        tokio::time::sleep(KEY_CHECK).await;
                        refresh_key(&ssh, plan, paths, &mut current).await;
                    };
                    tokio::select! {
                        exit = child.wait() => break exit,
                        () = check => {}
                        _ = interrupt.recv() => return Ok(0),
                        _ = terminate.recv() => return Ok(0),
                        _ = hangup.recv() => return Ok(0),
                    }
                };
                eprintln!(
                    "warren: tunnel {name}: ssh exited ({}); restarting in {backoff:?}",
                    exit.map_or_else(|e| e.to_string(), |s| s.to_string())
                );
            }
            Err(err) if first => {
                return Err(err.context(format!("cannot open the tunnel to {host}")));
            }
            Err(err) => eprintln!("warren: tunnel {name}: {err:#}; retrying in {backoff:?}"),
        }
        let _ = std::fs::remove_file(&paths.socket);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = interrupt.recv() => return Ok(0),
            _ = terminate.recv() => return Ok(0),
            _ = hangup.recv() => return Ok(0),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Writes the local connection file: the remote hub's, pointing at our end of the forward.
fn save_local(remote: &ConnectionInfo, paths: &Paths) -> anyhow::Result<()> {
    ConnectionInfo {
        socket: paths.socket.clone(),
        ..remote.clone()
    }
    .save(&paths.connection)?;
    Ok(())
}

/// If the remote hub refuses our key (it restarted and made a new one), fetches its connection
/// file again, so that the tunnel follows the hub through restarts as ssh's forward does.
async fn refresh_key(ssh: &Ssh, plan: &Plan, paths: &Paths, current: &mut ConnectionInfo) {
    let name = &plan.name;
    // Connecting asks the hub its version, a signed call. A hub that restarted has a new id:
    // the client learns it from the refusal, and the local file must learn it too, for the
    // callers (`warren sign`, other languages) that take it from there.
    let stale = match warren::Client::connect(&paths.connection).await {
        Err(warren::Error::Status(status)) => status.code() == tonic::Code::Unauthenticated,
        Ok(client) => *client.signer().hub_id() != *current.hub_id,
        Err(_) => false,
    };
    if !stale {
        return;
    }
    match fetch_connection(ssh, plan).await {
        Ok(fresh) if fresh.key != current.key || fresh.hub_id != current.hub_id => {
            match save_local(&fresh, paths) {
                Ok(()) => eprintln!(
                    "warren: tunnel {name}: the remote hub restarted (new id or key); updated {}",
                    paths.connection.display()
                ),
                Err(err) => eprintln!("warren: tunnel {name}: {err:#}"),
            }
            *current = fresh;
        }
        Ok(_) => {}
        Err(err) => eprintln!("warren: tunnel {name}: cannot refresh the key: {err:#}"),
    }
}

/// The remote hub's connection file, read over ssh (a restarted hub may have a new key).
pub(crate) async fn fetch_connection(ssh: &Ssh, plan: &Plan) -> anyhow::Result<ConnectionInfo> {
    let host = &plan.host;
    let mut remote = format!("{} --print-connection", plan.remote_hub_command);
    if let Some(socket) = &plan.remote_socket {
        remote.push_str(&format!(" --socket {}", quote(socket)));
    }
    let text = ssh.output(host, &remote).await?;
    let info: ConnectionInfo = serde_json::from_str(text.trim())
        .with_context(|| format!("`{remote}` on {host} did not print a warren connection file"))?;
    info.key()?;
    Ok(info)
}

/// Waits until the local end of the forward answers (or ssh gives up).
async fn wait_ready(child: &mut tokio::process::Child, socket: &Path) -> anyhow::Result<()> {
    if !forward_ready(child, socket, READY_LIMIT).await? {
        bail!("the forward did not come up within {READY_LIMIT:?}");
    }
    Ok(())
}
