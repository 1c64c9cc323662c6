//! The checks for what lies beyond this machine: ssh and the tunnel to a hub on another
//! machine, and Slurm's tools when engines on Slurm are registered.

use std::path::{Path, PathBuf};
use std::time::Duration;
use warren::proto::EngineHealth;

use super::Report;
use crate::ssh::{Ssh, quote};

/// How long the remote end gets to answer over ssh.
const SSH_LIMIT: Duration = Duration::from_secs(15);

/// A tunnel to check: its name, and what the config file says of its host, if it names it.
#[derive(Debug)]
pub(crate) struct TunnelCheck {
    name: String,
    host: Option<String>,
    ssh: String,
    remote_socket: Option<String>,
    remote_hub_command: String,
}

impl TunnelCheck {
    /// The tunnel called `name`, with its host's settings if the config file has a hub of
    /// that name with a `host` (`WARREN_SSH` beats the file's `ssh`, as the flag would).
    pub(crate) fn new(name: &str) -> Self {
        let entry = warren_proto::config::Config::load()
            .ok()
            .and_then(|(config, _)| config.hubs.get(name).cloned())
            .filter(|entry| entry.is_remote())
            .unwrap_or_default();
        let ssh = std::env::var("WARREN_SSH")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or(entry.ssh)
            .unwrap_or_else(|| "ssh".to_owned());
        Self {
            name: name.to_owned(),
            host: entry.host,
            ssh,
            remote_socket: entry.remote_socket,
            remote_hub_command: entry
                .remote_hub_command
                .unwrap_or_else(|| "warren-hub".to_owned()),
        }
    }
}

/// The program `name` as a shell would find it: a path, or a file on PATH.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return runnable(&path).then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| runnable(path))
    })
}

/// Checks ssh, and that the tunnel is up (or, if not, whether the hub over there answers);
/// returns whether it is up.
pub(crate) async fn ssh_and_tunnel(
    tunnel: &TunnelCheck,
    socket: &Path,
    report: &mut Report,
) -> bool {
    let name = &tunnel.name;
    let ssh = Ssh::parse(&tunnel.ssh).ok();
    let program = ssh.as_ref().map_or("", |ssh| ssh.program());
    let ssh_found = find_program(program);
    match &ssh_found {
        Some(path) => report.ok("ssh", format!("{}", path.display())),
        None => report.fail(
            "ssh",
            format!(
                "`{program}` is not on PATH: install OpenSSH's client (apt-get install openssh-client), or name the ssh command with `ssh = ...` in hub {name}'s config entry (or WARREN_SSH)"
            ),
        ),
    }
    let what = format!("tunnel {name}");
    let up = tokio::time::timeout(SSH_LIMIT, warren::ping(socket)).await;
    if matches!(up, Ok(Ok(()))) {
        let to = tunnel
            .host
            .as_ref()
            .map(|host| format!(" -> {host}"))
            .unwrap_or_default();
        report.ok(what, format!("up: {}{to}", socket.display()));
        return true;
    }
    let (Some(host), Some(ssh), Some(_)) = (&tunnel.host, &ssh, &ssh_found) else {
        report.fail(
            what,
            format!(
                "not up (nothing answers at {}): start it with `warren tunnel HOST --name {name}`",
                socket.display()
            ),
        );
        return false;
    };
    let mut remote = format!("{} --print-connection", tunnel.remote_hub_command);
    if let Some(socket) = &tunnel.remote_socket {
        remote.push_str(&format!(" --socket {}", quote(socket)));
    }
    let start = format!("start it with `warren --hub {name} tunnel --background`");
    match tokio::time::timeout(SSH_LIMIT, ssh.output(host, &remote)).await {
        Ok(Ok(_)) => report.fail(
            what,
            format!("not up, but the hub on {host} answers over ssh: {start}"),
        ),
        Ok(Err(err)) => report.fail(
            what,
            format!(
                "not up, and the hub on {host} did not answer over ssh ({}); check that {host} is reachable and runs a hub, then {start}",
                crate::one_line(&err)
            ),
        ),
        Err(_) => report.fail(
            what,
            format!("not up, and ssh to {host} did not answer within {SSH_LIMIT:?}; check the network, then {start}"),
        ),
    }
    false
}

/// With engines on Slurm registered (a `slurm_*` label), checks Slurm's client tools.
pub(crate) fn slurm(engines: &[EngineHealth], report: &mut Report) {
    let on_slurm: Vec<String> = engines
        .iter()
        .filter(|e| e.labels.keys().any(|k| k.starts_with("slurm")))
        .map(|e| e.id.to_string())
        .collect();
    if on_slurm.is_empty() {
        return;
    }
    let missing: Vec<&str> = ["sbatch", "squeue", "scancel"]
        .into_iter()
        .filter(|tool| find_program(tool).is_none())
        .collect();
    let which = format!("engine(s) {} run under Slurm", on_slurm.join(", "));
    if missing.is_empty() {
        report.ok(
            "slurm",
            format!("{which}; sbatch, squeue and scancel are on PATH"),
        );
    } else {
        report.fail(
            "slurm",
            format!(
                "{which}, but {} not on PATH here: run warren where jobs are submitted, or install Slurm's client (apt-get install slurm-client)",
                match missing.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ),
        );
    }
}
