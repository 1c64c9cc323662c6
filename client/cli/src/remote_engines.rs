//! `warren engines ssh`: engines on another machine that reach this hub through `ssh -R`.
//!
//! One ssh call makes a private directory there (`mktemp -d`, mode 0700); a second forwards a
//! socket in it to this hub's socket and starts the engines. The connection file (with the
//! key) travels over that session's stdin, never in an argv. Stdin stays open: when the
//! session ends, for whatever reason, the remote side sees end-of-file and stops the engines
//! and removes the directory.

use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use warren::Client;
use warren_proto::connection::ConnectionInfo;

use crate::cli::EnginesSshArgs;
use crate::ssh::{Ssh, quote};

/// How long the engines get to register.
const REGISTER_LIMIT: Duration = Duration::from_secs(30);
/// The label that marks engines of one `warren engines ssh` session.
const SESSION_LABEL: &str = "warren.ssh";

/// Runs `warren engines ssh`.
pub(crate) async fn run(
    client: &Client,
    hub: ConnectionInfo,
    args: &EnginesSshArgs,
) -> anyhow::Result<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let ssh = Ssh::parse(args.ssh.command())?;
    let host = &args.host;
    let session = format!("{}-{:x}", host, warren_proto::now_us());
    let mut labels = String::new();
    for pair in &args.labels {
        if !pair.contains('=') || pair.starts_with('=') {
            bail!("--label {pair}: write it as KEY=VALUE");
        }
        labels.push_str(&format!(" --label {}", quote(pair)));
    }
    labels.push_str(&format!(
        " --label {}",
        quote(&format!("{SESSION_LABEL}={session}"))
    ));

    let dir = ssh
        .output(
            host,
            "umask 077 && mktemp -d \"${TMPDIR:-/tmp}/warren-engines.XXXXXX\"",
        )
        .await?
        .trim()
        .to_owned();
    if !dir.starts_with('/') || dir.contains(['\'', '\n']) {
        bail!("{host} gave an unexpected temporary directory: {dir:?}");
    }
    let remote_socket = format!("{dir}/hub.sock");
    let script = format!(
        "set -u; umask 077; dir={dir}; IFS= read -r conn || exit 1; printf '%s\\n' \"$conn\" > \"$dir/hub.json\"; \
         pids=; i=0; while [ $i -lt {n} ]; do \
           {engine} --connection-file \"$dir/hub.json\" --spill-dir \"$dir/spill-$i\" --slots {slots}{labels} & \
           pids=\"$pids $!\"; i=$((i+1)); done; \
         cat > /dev/null; kill $pids 2>/dev/null; wait; rm -rf \"$dir\"",
        dir = quote(&dir),
        n = args.engines,
        engine = args.remote_engine_command,
        slots = args.slots,
    );
    let forward = format!("{remote_socket}:{}", hub.socket.display());
    let mut child = ssh
        .command(&["-o", "ExitOnForwardFailure=yes", "-R", &forward], host)
        .arg(format!("sh -c {}", quote(&script)))
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot start ssh")?;
    let mut stdin = child.stdin.take().context("ssh has no stdin")?;
    let remote = ConnectionInfo {
        socket: remote_socket.into(),
        ..hub
    };
    let line = serde_json::to_string(&remote)? + "\n";
    stdin.write_all(line.as_bytes()).await?;
    stdin.flush().await?;

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + REGISTER_LIMIT;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut warned = false;
    let status = loop {
        tokio::select! {
            exit = child.wait() => {
                let exit = exit?;
                eprintln!("warren: the ssh session to {host} ended ({exit}); its engines are gone");
                break 255;
            }
            _ = interrupt.recv() => break 0,
            _ = terminate.recv() => break 0,
            _ = tick.tick() => {
                for engine in client.engines().await? {
                    if engine.labels.get(SESSION_LABEL) == Some(&session) && seen.insert(engine.id) {
                        println!("warren: engine {} registered from {host} (pid {})", engine.id, engine.pid);
                        if seen.len() == args.engines as usize {
                            println!("warren: {} engine(s) on {host}; Ctrl-C stops them", seen.len());
                        }
                    }
                }
                if !warned && seen.len() < args.engines as usize && Instant::now() > deadline {
                    warned = true;
                    eprintln!("warren: only {} of {} engines registered within {REGISTER_LIMIT:?}", seen.len(), args.engines);
                }
            }
        }
    };
    // End of input tells the remote side to stop the engines and clean up.
    drop(stdin);
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Ok(status)
}
