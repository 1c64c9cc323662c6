//! One node's forward to the hub (`warren engines slurm-node forward`): the one ssh
//! connection from this node back to the submit host, shared by the node's engines.
//!
//! It makes the node's directory (mode 0700; refusing one that already exists), fetches the
//! hub's connection file with `ssh HOST cat FILE` (the key crosses ssh's stdout only), starts
//! `ssh -N -L DIR/hub.sock:HUB_SOCKET HOST` with SIGTERM and SIGUSR1 ignored, and once a hub answers
//! through it writes `DIR/hub.json` (mode 0600, pointing at the local socket): the engines
//! wait for that file. Then it keeps ssh up (restarting it with backoff) and checks every 2 s
//! that the key still opens the hub: a restarted hub may have a new key and has a new id, so
//! it fetches them again, and the engines reconnect with them.
//!
//! SIGTERM (Slurm ending the job), SIGUSR1 (the batch script: the engines ended), SIGINT or
//! SIGHUP make it finish: it removes the connection file at once, waits (bounded) until no
//! engine of the node is alive, so that each one's goodbye reaches the hub through ssh,
//! then stops ssh and removes the directory. A failure to set up is reported (the job's log
//! is the way back to the person who submitted it) and fails the step, which fails the job.

use anyhow::{Context, bail};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::signal::unix::{Signal, SignalKind, signal};
use warren_proto::auth::Key;
use warren_proto::connection::ConnectionInfo;

use super::node::{CONNECTION_FILE, PIDS, SOCKET, SlurmEnv};
use crate::cli::NodeArgs;
use crate::ssh::{Ssh, forward_ready, quote};

/// How long ssh may take to bring the forward up.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How often the forward checks that its key still opens the hub.
const KEY_CHECK: Duration = Duration::from_secs(2);
/// How long a finishing forward waits for its node's engines to leave.
const LEAVE_LIMIT: Duration = Duration::from_secs(20);
/// The longest wait between restarts of ssh.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Tries at fetching the key when the forward starts.
const FETCH_TRIES: u32 = 2;

/// The signals that make the forward finish.
struct Stop {
    signals: [(Signal, &'static str); 4],
}

impl Stop {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            signals: [
                (signal(SignalKind::terminate())?, "SIGTERM"),
                (signal(SignalKind::user_defined1())?, "SIGUSR1"),
                (signal(SignalKind::interrupt())?, "SIGINT"),
                (signal(SignalKind::hangup())?, "SIGHUP"),
            ],
        })
    }

    /// Waits for one of them; which.
    async fn requested(&mut self) -> &'static str {
        let [(term, a), (usr1, b), (int, c), (hup, d)] = &mut self.signals;
        tokio::select! {
            _ = term.recv() => a,
            _ = usr1.recv() => b,
            _ = int.recv() => c,
            _ = hup.recv() => d,
        }
    }
}

/// The node's directory, removed when the forward ends however it ends.
struct NodeDir {
    path: PathBuf,
}

impl NodeDir {
    fn create(path: PathBuf) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| {
                format!(
                    "cannot create {} (a directory of that name must not exist yet)",
                    path.display()
                )
            })?;
        let dir = Self { path };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path.join(PIDS))
            .with_context(|| format!("cannot create {}", dir.path.join(PIDS).display()))?;
        Ok(dir)
    }

    fn connection(&self) -> PathBuf {
        self.path.join(CONNECTION_FILE)
    }

    fn socket(&self) -> PathBuf {
        self.path.join(SOCKET)
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        // The key first, in case the rest cannot go.
        let _ = std::fs::remove_file(self.connection());
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs the forward until told to finish.
pub(super) async fn run(args: &NodeArgs) -> anyhow::Result<u8> {
    let slurm = SlurmEnv::read()?;
    let node = slurm.node.clone();
    let mut stop = Stop::install()?;
    let host = args
        .hub_host
        .clone()
        .or_else(|| {
            std::env::var("SLURM_SUBMIT_HOST")
                .ok()
                .filter(|h| !h.is_empty())
        })
        .context("neither --hub-host nor SLURM_SUBMIT_HOST names the host to reach the hub on")?;
    let ssh = Ssh::parse(&args.ssh)?;
    let dir = NodeDir::create(slurm.node_dir(&args.tag)).with_context(|| format!("node {node}"))?;

    let started = tokio::select! {
        started = start(&ssh, &host, args, &dir) => started,
        why = stop.requested() => {
            eprintln!("warren: node {node}: {why} while setting up the forward; removing it");
            return Ok(0);
        }
    };
    let (mut child, mut current) = started.with_context(|| {
        format!(
            "node {node}: cannot reach the hub at {host}:{}",
            args.hub_socket.display()
        )
    })?;
    eprintln!(
        "warren: node {node}: forwarding {} to {host}:{}",
        dir.socket().display(),
        args.hub_socket.display()
    );

    let mut backoff = Duration::from_millis(250);
    let why = loop {
        tokio::select! {
            exit = child.wait() => {
                let exit = exit.map_or_else(|e| e.to_string(), |s| s.to_string());
                eprintln!("warren: node {node}: ssh exited ({exit}); restarting it in {backoff:?}");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    why = stop.requested() => break why,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match spawn(&ssh, &host, &dir, &args.hub_socket) {
                    Ok(restarted) => child = restarted,
                    Err(err) => eprintln!("warren: node {node}: {err:#}"),
                }
            }
            () = tokio::time::sleep(KEY_CHECK) => {
                if refresh(&ssh, &host, args, &dir, &mut current).await {
                    eprintln!("warren: node {node}: the hub restarted; fetched its new key and id");
                }
            }
            why = stop.requested() => break why,
        }
    };
    finish(&node, &dir, child, why).await;
    Ok(0)
}

/// Fetches the key, brings the forward up, and writes the node's connection file.
async fn start(
    ssh: &Ssh,
    host: &str,
    args: &NodeArgs,
    dir: &NodeDir,
) -> anyhow::Result<(Child, ConnectionInfo)> {
    let mut tries = 0;
    let info = loop {
        tries += 1;
        match fetch(ssh, host, args, &dir.socket()).await {
            Ok(info) => break info,
            Err(err) if tries >= FETCH_TRIES => {
                return Err(err.context(format!(
                    "cannot read its key over ssh; the nodes must be able to `ssh {host}` without a password or prompt (see --hub-host, --ssh)"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let mut child = spawn(ssh, host, dir, &args.hub_socket)?;
    wait_ready(&mut child, &dir.socket()).await?;
    info.save(&dir.connection())?;
    Ok((child, info))
}

/// The hub's connection file (or key file) as it is on the submit host, read with
/// `ssh HOST cat FILE`, made to point at the node's socket.
async fn fetch(
    ssh: &Ssh,
    host: &str,
    args: &NodeArgs,
    socket: &Path,
) -> anyhow::Result<ConnectionInfo> {
    let source = args.key_source.display().to_string();
    let text = ssh
        .output(host, &format!("cat -- {}", quote(&source)))
        .await?;
    if args.bare_key {
        let key = Key::from_hex(&text, &format!("{host}:{source}"))?;
        // The hub's id is learned from its first answer, as with any key file.
        return Ok(ConnectionInfo::new(
            socket.to_owned(),
            String::new(),
            &key,
            0,
        ));
    }
    let mut info: ConnectionInfo = serde_json::from_str(text.trim())
        .with_context(|| format!("{host}:{source} is not a warren connection file"))?;
    info.key()?;
    info.socket = socket.to_owned();
    Ok(info)
}

/// Starts `ssh -N -L` from the node's socket to the hub's, deaf to Slurm's signals.
fn spawn(ssh: &Ssh, host: &str, dir: &NodeDir, hub_socket: &Path) -> anyhow::Result<Child> {
    let forward = format!("{}:{}", dir.socket().display(), hub_socket.display());
    let options = [
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "StreamLocalBindUnlink=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=4",
        "-L",
        &forward,
    ];
    // SIGTERM comes from Slurm ending the job, SIGUSR1 from srun handing on the batch
    // script's request to finish: both are for the forward, which stops ssh when it is done.
    ssh.command_ignoring(&["TERM", "USR1"], &options, host)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start ssh")
}

/// Waits until a hub answers through the forward (or ssh gives up).
async fn wait_ready(child: &mut Child, socket: &Path) -> anyhow::Result<()> {
    if !forward_ready(child, socket, READY_LIMIT).await? {
        bail!(
            "no hub answered through the forward within {READY_LIMIT:?}: is the hub running, on that socket?"
        );
    }
    Ok(())
}

/// If the hub refuses the key (it restarted with a new one) or has a new id, fetches the
/// connection file again and rewrites the node's; true if it did.
async fn refresh(
    ssh: &Ssh,
    host: &str,
    args: &NodeArgs,
    dir: &NodeDir,
    current: &mut ConnectionInfo,
) -> bool {
    let builder = warren::ClientBuilder::new()
        .connection_file(dir.connection())
        .timeout(Duration::from_secs(5));
    let stale = match tokio::time::timeout(Duration::from_secs(10), builder.connect()).await {
        Ok(Err(warren::Error::Status(status))) => status.code() == tonic::Code::Unauthenticated,
        // A bare key has no id to compare: the client learned the hub's.
        Ok(Ok(client)) => !args.bare_key && *client.signer().hub_id() != *current.hub_id,
        Ok(Err(_)) | Err(_) => false,
    };
    if !stale {
        return false;
    }
    match fetch(ssh, host, args, &dir.socket()).await {
        Ok(fresh) if fresh != *current => match fresh.save(&dir.connection()) {
            Ok(()) => {
                *current = fresh;
                true
            }
            Err(err) => {
                eprintln!(
                    "warren: cannot rewrite {}: {err}",
                    dir.connection().display()
                );
                false
            }
        },
        Ok(_) => false,
        Err(err) => {
            eprintln!("warren: cannot fetch the hub's key again: {err:#}");
            false
        }
    }
}

/// Removes the key, waits for the node's engines to leave, stops ssh, removes the directory.
async fn finish(node: &str, dir: &NodeDir, mut child: Child, why: &str) {
    let _ = std::fs::remove_file(dir.connection());
    let deadline = Instant::now() + LEAVE_LIMIT;
    loop {
        let left = engines_alive(&dir.path.join(PIDS));
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "warren: node {node}: {left} engine(s) still running {LEAVE_LIMIT:?} after {why}; closing the forward anyway"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    eprintln!("warren: node {node}: forward closed ({why})");
}

/// How many of the engines whose pids are in `pids` are still alive.
fn engines_alive(pids: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(pids) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A zombie counts as gone.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
            })
        })
        .count()
}
