//! `warren cluster start --daemon` and `warren cluster stop`: a local cluster detached from the
//! terminal, found again by the pid file beside its socket.
//!
//! The detached process is this same command with `--daemon` swapped for the hidden
//! `--daemon-child`, in a process group of its own, its output appended to a log beside the
//! socket (`hub.sock` → `hub.cluster.log`). It writes its pid file (`hub.cluster.pid`: its pid
//! and its start time, so that a recycled pid is never taken for it) once its hub and engines
//! are up, which is what the starting command waits for; it removes the file when it ends.
//! `cluster stop` sends it SIGTERM, the same stop as Ctrl-C in the foreground: the hub is told
//! to shut down with its engines, and each child is waited for.

use anyhow::{Context, bail};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long the detached cluster gets to come up (the hub, then the engines).
const START_LIMIT: Duration = Duration::from_secs(40);
/// How long `cluster stop` waits for it to end cleanly before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// The files of the detached cluster on `socket`.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// Its pid and start time, written once it is up.
    pub(crate) pid: PathBuf,
    /// Its output.
    pub(crate) log: PathBuf,
}

impl Files {
    /// Beside the socket: `hub.sock` → `hub.cluster.pid`, `hub.cluster.log`.
    pub(crate) fn beside(socket: &Path) -> Self {
        Self {
            pid: socket.with_extension("cluster.pid"),
            log: socket.with_extension("cluster.log"),
        }
    }
}

/// A process's start time (clock ticks after boot), which tells it from a later process that
/// got the same pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: fields count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The detached cluster's pid, if its pid file names a process that is still that cluster.
pub(crate) fn running(files: &Files) -> Option<u32> {
    let text = std::fs::read_to_string(&files.pid).ok()?;
    let mut words = text.split_whitespace();
    let pid: u32 = words.next()?.parse().ok()?;
    let started: u64 = words.next()?.parse().ok()?;
    (start_time(pid) == Some(started)).then_some(pid)
}

/// In the detached process, once the cluster is up: writes the pid file (mode 0600), which
/// the starting command waits for, and returns the guard that removes it.
pub(crate) fn ready(files: &Files) -> anyhow::Result<PidFile> {
    let pid = std::process::id();
    let started = start_time(pid).context("cannot read this process's start time in /proc")?;
    warren_proto::private_file::write(&files.pid, format!("{pid} {started}\n").as_bytes())?;
    Ok(PidFile(files.pid.clone()))
}

/// Removes the pid file when the detached cluster ends.
pub(crate) struct PidFile(PathBuf);

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts this command again, detached, and waits until it says it is up (the caller has
/// checked that no cluster runs on `socket`).
pub(crate) async fn start(socket: &Path, engines: u32) -> anyhow::Result<u8> {
    let files = Files::beside(socket);
    let args = swap_daemon_flag(std::env::args_os().skip(1));
    let mut child = spawn_detached(&args, &files.log, "the detached cluster")?;
    let pid = child.id().unwrap_or(0);
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the detached cluster stopped ({status}) before it was up; its log ({}) ends with:\n{}",
                files.log.display(),
                tail(&files.log)
            );
        }
        if running(&files) == Some(pid) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            bail!(
                "the detached cluster was not up within {START_LIMIT:?}; see {}",
                files.log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let warren = crate::cli::socket_hint(socket);
    println!(
        "warren: cluster up in the background (pid {pid}): hub on {} with {engines} engine(s)",
        socket.display()
    );
    println!("  log   {}", files.log.display());
    println!("  pid   {}", files.pid.display());
    println!("  stop  {warren} cluster stop");
    Ok(0)
}

/// Starts this program again with `args`, detached: with no stdin, its output appended to
/// `log` (made 0600), in a process group of its own so that a Ctrl-C in this terminal does not
/// reach it. `what` names it in the error.
pub(crate) fn spawn_detached<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    log: &Path,
    what: &str,
) -> anyhow::Result<tokio::process::Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .with_context(|| format!("cannot open the log {}", log.display()))?;
    tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {what}"))
}

/// The arguments with `--daemon` replaced by `--daemon-child` (only before `--`, where the
/// command to run begins).
fn swap_daemon_flag(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut after_dashes = false;
    args.map(|arg| {
        if arg == "--" {
            after_dashes = true;
        }
        if !after_dashes && arg == "--daemon" {
            "--daemon-child".into()
        } else {
            arg
        }
    })
    .collect()
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Stops the detached cluster on `socket`: SIGTERM, then waits for it to stop its hub and
/// engines and exit; SIGKILL if it has not within [`STOP_LIMIT`] (its children die with it).
pub(crate) async fn stop(socket: &Path) -> anyhow::Result<u8> {
    let files = Files::beside(socket);
    let warren = crate::cli::socket_hint(socket);
    let Some(pid) = running(&files) else {
        if files.pid.exists() {
            let _ = std::fs::remove_file(&files.pid);
            println!(
                "warren: the cluster on {} was not running (removed its stale pid file)",
                socket.display()
            );
            return Ok(0);
        }
        if warren::ping(socket).await.is_ok() {
            bail!(
                "the hub on {} was not started with `cluster start --daemon`; stop it with `{warren} shutdown`",
                socket.display()
            );
        }
        bail!(
            "no cluster started with --daemon runs on {} (no pid file at {})",
            socket.display(),
            files.pid.display()
        );
    };
    let target = rustix::process::Pid::from_raw(pid as i32).context("bad pid file")?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal the cluster (pid {pid})"))?;
    let deadline = Instant::now() + STOP_LIMIT;
    while start_time(pid).is_some() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if start_time(pid).is_some() {
        let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
        let _ = std::fs::remove_file(&files.pid);
        bail!(
            "the cluster (pid {pid}) did not stop within {STOP_LIMIT:?} and was killed; see {}",
            files.log.display()
        );
    }
    println!(
        "warren: cluster stopped (pid {pid}); its log is {}",
        files.log.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_daemon_flag_before_the_command_is_swapped() {
        let args = [
            "cluster", "start", "--daemon", "-n", "2", "--", "echo", "--daemon",
        ]
        .map(std::ffi::OsString::from);
        let swapped = swap_daemon_flag(args.into_iter());
        assert_eq!(swapped[2], "--daemon-child");
        assert_eq!(swapped[7], "--daemon");
    }

    #[test]
    fn this_process_has_a_start_time_and_files_sit_beside_the_socket() {
        assert!(start_time(std::process::id()).is_some());
        let files = Files::beside(Path::new("/run/x/hub.sock"));
        assert_eq!(files.pid, PathBuf::from("/run/x/hub.cluster.pid"));
        assert_eq!(files.log, PathBuf::from("/run/x/hub.cluster.log"));
    }
}
