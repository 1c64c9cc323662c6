//! A private OpenSSH server on loopback, for the `ssh -t` baseline: its own port, host key,
//! authorized key and config in a temp dir, as the tests start theirs (`tests/src/sshd.rs`).
//! Stopped when dropped.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::Proc;

/// The host name given to ssh; the client config maps it to the server.
pub(crate) const HOST: &str = "warren-bench";

/// A running sshd and the client config that reaches it.
pub(crate) struct Sshd {
    /// The client config (`ssh -F`).
    pub(crate) client_config: PathBuf,
    _server: Proc,
}

fn find(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| extra.iter().map(PathBuf::from).find(|p| p.is_file()))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.stdin(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "{command:?} failed");
    Ok(())
}

impl Sshd {
    /// Starts one in `dir`; `None` if OpenSSH is not installed.
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Option<Self>> {
        let (Some(sshd), Some(keygen), Some(_)) = (
            find("sshd", &["/usr/sbin/sshd"]),
            find("ssh-keygen", &[]),
            find("ssh", &[]),
        ) else {
            return Ok(None);
        };
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir)?;
        if rustix::process::geteuid().is_root() && !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd")?;
        }
        for key in ["host_key", "client_key"] {
            run(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", HOST, "-f"])
                .arg(dir.join(key)))?;
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_key.pub"), &authorized)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let server_config = dir.join("sshd_config");
        std::fs::write(
            &server_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nX11Forwarding no\n\
                 PrintMotd no\nLogLevel ERROR\n",
                host_key = dir.join("host_key").display(),
                pid = dir.join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )?;
        let host_public = std::fs::read_to_string(dir.join("host_key.pub"))?;
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_public}"),
        )?;
        let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?;
        let client_config = dir.join("ssh_config");
        std::fs::write(
            &client_config,
            format!(
                "Host {HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n\
                 \x20 IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n\
                 \x20 BatchMode yes\n  LogLevel ERROR\n",
                user = user.trim(),
                key = dir.join("client_key").display(),
                known = dir.join("known_hosts").display(),
            ),
        )?;
        let server = Command::new(&sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&server_config)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start sshd")?;
        let sshd = Self {
            client_config,
            _server: Proc(server),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sshd.answers() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the bench's sshd did not accept a login"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(sshd))
    }

    fn answers(&self) -> bool {
        Command::new("ssh")
            .arg("-F")
            .arg(&self.client_config)
            .args([HOST, "true"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
