//! The interactive scenarios: a keystroke's echo through `warren exec -t` and through `ssh -t`
//! to a private sshd on loopback (both driven from a real pseudo-terminal, the remote side
//! `cat` on a raw terminal, one byte at a time), and a stdin stream through a foreground
//! `warren exec` into `cat > /dev/null`.

use anyhow::{Context, bail};
use rustix::pty::OpenptFlags;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warren_tests::sshd::{HOST, Sshd};

use crate::procs::{Cluster, Proc, binary};
use crate::stats::Samples;

/// What the remote side runs: `cat` echoing each byte as it comes, after a marker.
const ECHO: &str = "stty raw -echo; printf READY; exec cat";
/// How long a byte may take to come back before the run is called broken.
const PATIENCE: Duration = Duration::from_secs(20);

/// A program on a pseudo-terminal the bench types at.
struct Typist {
    master: OwnedFd,
    _program: Proc,
}

impl Typist {
    fn spawn(mut command: Command) -> anyhow::Result<Self> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let tty = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
        let side = || -> anyhow::Result<Stdio> { Ok(Stdio::from(tty.try_clone()?)) };
        command.stdin(side()?).stdout(side()?).stderr(side()?);
        let program = Proc(command.spawn().context("start the program on a terminal")?);
        Ok(Self {
            master,
            _program: program,
        })
    }

    /// Reads until `wanted` has come (ignoring what comes before it).
    fn expect(&self, wanted: &[u8]) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while !seen.windows(wanted.len()).any(|w| w == wanted) {
            if Instant::now() > deadline {
                bail!(
                    "{:?} never came back; saw {:?}",
                    String::from_utf8_lossy(wanted),
                    String::from_utf8_lossy(&seen)
                );
            }
            let n = rustix::io::read(&self.master, &mut buffer)?;
            if n == 0 {
                bail!(
                    "the program closed its terminal; it showed {:?}",
                    String::from_utf8_lossy(&seen)
                );
            }
            seen.extend_from_slice(&buffer[..n]);
        }
        Ok(())
    }

    /// Round trips of one byte each, after `warm` unmeasured ones.
    fn echoes(&self, warm: usize, runs: usize) -> anyhow::Result<Samples> {
        self.expect(b"READY")?;
        let mut samples = Vec::with_capacity(runs);
        for i in 0..warm + runs {
            let byte = [b'a' + (i % 26) as u8];
            let start = Instant::now();
            rustix::io::write(&self.master, &byte)?;
            self.expect(&byte)?;
            if i >= warm {
                samples.push(start.elapsed());
            }
        }
        Ok(Samples::new(samples))
    }
}

/// Keystroke round trips through `warren exec -t`, and through `ssh -tt` if there is an sshd.
pub(crate) fn keystroke_echo(
    cluster: &Cluster,
    sshd: Option<&Sshd>,
    runs: usize,
) -> anyhow::Result<(Samples, Option<Samples>)> {
    let warm = runs / 10;
    let mut warren = Command::new(binary("warren")?);
    warren
        .arg("--connection-file")
        .arg(cluster.connection_file())
        .args(["exec", "-t", "--", "sh", "-c", ECHO]);
    let through_warren = Typist::spawn(warren)?.echoes(warm, runs)?;
    let through_ssh = match sshd {
        Some(sshd) => {
            let mut ssh = Command::new("ssh");
            ssh.arg("-F")
                .arg(&sshd.client_config)
                .args(["-tt", HOST, ECHO]);
            Some(Typist::spawn(ssh)?.echoes(warm, runs)?)
        }
        None => None,
    };
    Ok((through_warren, through_ssh))
}

/// `bytes` of stdin through a foreground `warren exec -- sh -c 'cat > /dev/null'`, from the
/// first write to warren's exit; bytes per second.
pub(crate) fn stdin_stream(cluster: &Cluster, bytes: u64) -> anyhow::Result<f64> {
    let mut warren = Command::new(binary("warren")?);
    warren
        .arg("--connection-file")
        .arg(cluster.connection_file())
        .args(["exec", "--", "sh", "-c", "cat > /dev/null"]);
    feed(warren, bytes)
}

/// The same bytes through `cat | cat | cat | cat > /dev/null`: the eight copies between
/// processes that stdin through warren makes at the least (into a pipe, out of it into the
/// client, into and out of the hub's socket, of the engine's, into the task's pipe and out),
/// and nothing else. No relay through a hub and an engine can go faster on this machine.
pub(crate) fn relay_bound(bytes: u64) -> anyhow::Result<f64> {
    let mut chain = Command::new("sh");
    chain.args(["-c", "cat | cat | cat | cat > /dev/null"]);
    feed(chain, bytes)
}

/// `bytes` written into `command`'s stdin, from the first write to its exit; bytes per second.
fn feed(mut command: Command, bytes: u64) -> anyhow::Result<f64> {
    const WRITE: usize = 256 << 10;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("start the stdin stream's reader")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let block = vec![b'x'; WRITE];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        stdin.write_all(&block[..n])?;
        left -= n as u64;
    }
    drop(stdin);
    let status = child.wait()?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        status.success(),
        "the stdin stream's reader ended with {status}"
    );
    Ok(bytes as f64 / elapsed.as_secs_f64())
}
