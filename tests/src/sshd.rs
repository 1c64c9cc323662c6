//! A private OpenSSH server for tests: its own port on loopback, host key, authorized key and
//! config file in a temp dir. It touches no system configuration (as root it needs the
//! privilege-separation directory /run/sshd, which CI creates) and is stopped when dropped,
//! even if the test fails. OpenSSH 9.2 gates Unix-socket forwarding on AllowTcpForwarding
//! too, so that is on; the server listens on loopback only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Proc, require_tool};

/// The host name tests give ssh; the client config maps it to the test server.
pub const HOST: &str = "warren-test";

/// A running sshd and the client config that reaches it.
#[derive(Debug)]
pub struct Sshd {
    /// The client config (`ssh -F`).
    pub client_config: PathBuf,
    _server: Proc,
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a setup command");
    assert!(output.status.success(), "{command:?} failed: {output:?}");
}

impl Sshd {
    /// Starts a server in `dir`, or returns `None` (and says so loudly) if OpenSSH is missing.
    pub fn start(dir: &Path) -> Option<Self> {
        let sshd = require_tool("sshd", &["/usr/sbin/sshd"], "WARREN_REQUIRE_SSHD")?;
        let keygen = require_tool("ssh-keygen", &[], "WARREN_REQUIRE_SSHD")?;
        require_tool("ssh", &[], "WARREN_REQUIRE_SSHD")?;
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).expect("sshd dir");
        if rustix::process::geteuid().is_root() && !Path::new("/run/sshd").exists() {
            // sshd's privilege-separation directory, which its service would create.
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        for key in ["host_key", "client_key"] {
            run(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "warren-test", "-f"])
                .arg(dir.join(key)));
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_key.pub"), &authorized).expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server_config = dir.join("sshd_config");
        std::fs::write(
            &server_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n\
                 AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\nX11Forwarding no\n\
                 PrintMotd no\nLogLevel VERBOSE\n",
                host_key = dir.join("host_key").display(),
                pid = dir.join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )
        .expect("sshd_config");
        let host_public = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_public}"),
        )
        .expect("known_hosts");
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .expect("user name");
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
        )
        .expect("ssh_config");

        let mut command = Command::new(&sshd);
        command.arg("-D").arg("-e").arg("-f").arg(&server_config);
        let server = Proc::spawn("sshd", command, dir.join("sshd.log"));
        let sshd = Self {
            client_config,
            _server: server,
        };
        sshd.wait_ready();
        Some(sshd)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ssh")
                .arg("-F")
                .arg(&self.client_config)
                .args([HOST, "true"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test sshd did not accept a login"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ssh command line for `WARREN_SSH`.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.client_config.display())
    }
}
