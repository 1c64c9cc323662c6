//! Running the system's OpenSSH client: the one transport between machines.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The ssh program and the options the user gave it (`--ssh`, `WARREN_SSH`).
#[derive(Clone, Debug)]
pub(crate) struct Ssh {
    program: String,
    options: Vec<String>,
}

impl Ssh {
    /// Parses `ssh -F config -o X=y`, split on white space.
    pub(crate) fn parse(command: &str) -> anyhow::Result<Self> {
        let mut words = command.split_whitespace().map(str::to_owned);
        let program = words
            .next()
            .context("--ssh is empty; give the ssh command to run")?;
        Ok(Self {
            program,
            options: words.collect(),
        })
    }

    /// The ssh program, as given.
    pub(crate) fn program(&self) -> &str {
        &self.program
    }

    /// `ssh [options] [extra] host`, with no remote command yet.
    pub(crate) fn command(&self, extra: &[&str], host: &str) -> Command {
        let argv = self.argv(extra, host);
        let mut command = Command::new(&argv[0]);
        // A tunnel or an engine session killed outright takes its ssh with it.
        warren_proto::os::child::die_with_parent(command.as_std_mut());
        command.args(&argv[1..]).kill_on_drop(true);
        command
    }

    /// [`Ssh::command`] started through `sh` with these signals (`TERM`, `USR1`...) ignored,
    /// for a forward that must outlive the SIGTERM Slurm sends every process of a job it
    /// ends: OpenSSH installs its handlers only for signals that were not ignored when it
    /// started, so the forward stays up until its owner stops it (SIGKILL, or its death).
    pub(crate) fn command_ignoring(&self, signals: &[&str], extra: &[&str], host: &str) -> Command {
        let mut command = Command::new("sh");
        warren_proto::os::child::die_with_parent(command.as_std_mut());
        command
            .arg("-c")
            .arg(format!("trap '' {}; exec \"$@\"", signals.join(" ")))
            .arg("sh")
            .args(self.argv(extra, host))
            .kill_on_drop(true);
        command
    }

    /// The words of `ssh [options] [extra] host`.
    fn argv(&self, extra: &[&str], host: &str) -> Vec<String> {
        let mut argv = vec![self.program.clone()];
        argv.extend(self.options.iter().cloned());
        // Never prompt: a tunnel runs unattended, and a prompt would hang it.
        argv.extend(["-o".to_owned(), "BatchMode=yes".to_owned()]);
        argv.extend(extra.iter().map(|word| (*word).to_owned()));
        argv.extend(["--".to_owned(), host.to_owned()]);
        argv
    }

    /// Runs `remote` (a shell command line) on `host` and returns its stdout.
    pub(crate) async fn output(&self, host: &str, remote: &str) -> anyhow::Result<String> {
        let output = self
            .command(&[], host)
            .arg(remote)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.program))?;
        if !output.status.success() {
            bail!(
                "`{} {host} {remote}` failed ({}): {}",
                self.program,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout)
            .context("the remote command printed something that is not text")
    }
}

/// Quotes a word for a POSIX shell on the remote side.
pub(crate) fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Waits until a hub answers on `socket`, the local end of the `ssh -L` forward that `ssh`
/// runs: `true` once one does, `false` if none did within `limit` (the caller says why that
/// may be), an error if ssh exited first.
pub(crate) async fn forward_ready(
    ssh: &mut Child,
    socket: &Path,
    limit: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = ssh.try_wait()? {
            bail!("ssh exited ({status}) before the forward was up; its message is above");
        }
        if socket.exists() && warren::ping(socket).await.is_ok() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
