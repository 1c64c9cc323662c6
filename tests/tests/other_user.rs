//! Another user on the hub's machine can reach neither the hub's socket nor the forward of it,
//! and a connection from another uid that did get through is refused on its credentials.
//! Needs root (to make a throwaway user); says so and skips otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use warren_tests::sshd::{HOST, Sshd};
use warren_tests::*;

/// A system user made for one test and deleted after it.
struct ThrowawayUser {
    name: String,
    uid: String,
    gid: String,
    /// A copy of `warren` that user may run (the build directory may be private).
    probe: PathBuf,
    _probe_dir: tempfile::TempDir,
}

impl ThrowawayUser {
    fn create(tag: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("\n*** SKIPPED: making a throwaway user needs root ***\n");
            return None;
        }
        let name = format!("warren{tag}{}", std::process::id() % 100_000);
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .expect("useradd");
        assert!(made.success(), "useradd {name} failed");
        let id = |flag: &str| {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let probe_dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(probe_dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let probe = probe_dir.path().join("warren");
        std::fs::copy(binary("warren"), &probe).expect("copy warren");
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Some(Self {
            name,
            uid,
            gid,
            probe,
            _probe_dir: probe_dir,
        })
    }

    /// `warren --socket SOCKET ping`, run as this user.
    fn ping(&self, socket: &Path) -> Output {
        Command::new("setpriv")
            .args(["--reuid", &self.uid, "--regid", &self.gid, "--clear-groups"])
            .arg(&self.probe)
            .arg("--socket")
            .arg(socket)
            .arg("ping")
            .env_clear()
            .output()
            .expect("setpriv")
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn refused(output: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(255),
        "the other user got through: {output:?}"
    );
    assert!(stderr.contains(why), "expected `{why}`: {stderr}");
}

#[tokio::test]
#[cfg_attr(
    not(all(has_root, has_sshd)),
    ignore = "needs root (to make a throwaway user) and sshd: apt-get install openssh-server"
)]
async fn another_user_cannot_reach_the_hub_or_its_forward() {
    let Some(user) = ThrowawayUser::create("a") else {
        return;
    };
    let cluster = Cluster::with_engines(1).await;
    refused(&user.ping(&cluster.socket), "Permission denied");

    let Some(sshd) = Sshd::start(cluster.dir()) else {
        return;
    };
    let laptop = cluster.dir().join("laptop");
    std::fs::create_dir_all(&laptop).expect("laptop");
    std::fs::set_permissions(&laptop, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut command = Command::new(binary("warren"));
    command
        .env("XDG_RUNTIME_DIR", &laptop)
        .env("WARREN_SSH", sshd.ssh_command())
        .args(["tunnel", HOST, "--name", "mine", "--remote-socket"])
        .arg(&cluster.socket)
        .arg("--remote-hub-command")
        .arg(binary("warren-hub"));
    let tunnel = Proc::spawn("warren tunnel", command, cluster.dir().join("tunnel.log"));
    let forward = laptop.join("warren/remote/mine.sock");
    let up = eventually(PATIENCE, || {
        let forward = forward.clone();
        async move { warren::ping(&forward).await.map_err(|_| ()) }
    })
    .await;
    assert!(
        up.is_ok(),
        "the tunnel did not come up:\n{}",
        tunnel.output()
    );
    refused(&user.ping(&forward), "Permission denied");
}

#[tokio::test]
#[cfg_attr(not(has_root), ignore = "needs root (to make a throwaway user)")]
async fn a_connection_from_another_uid_is_refused_on_its_credentials() {
    let Some(user) = ThrowawayUser::create("b") else {
        return;
    };
    let cluster = Cluster::with_engines(1).await;
    // Open the way on purpose, as a careless admin might: the hub still checks who connects.
    std::fs::set_permissions(cluster.dir(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    std::fs::set_permissions(&cluster.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod");
    let output = user.ping(&cluster.socket);
    std::fs::set_permissions(cluster.dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(&cluster.socket, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    assert_eq!(
        output.status.code(),
        Some(255),
        "the other uid got an answer: {output:?}"
    );
    let logged = eventually(PATIENCE, || {
        let log = cluster.hub.as_ref().expect("hub").output();
        let uid = user.uid.clone();
        async move {
            if log.contains("refused a connection from another user")
                && log.contains(&format!("peer_uid={uid}"))
            {
                Ok(())
            } else {
                Err(())
            }
        }
    })
    .await;
    assert!(logged.is_ok(), "the refusal is logged with the peer's uid");
    warren::ping(&cluster.socket)
        .await
        .expect("the owner still gets through");
}

#[tokio::test]
#[cfg_attr(not(has_root), ignore = "needs root (to make a throwaway user)")]
async fn the_client_refuses_a_socket_another_user_answers() {
    let Some(user) = ThrowawayUser::create("c") else {
        return;
    };
    // A shared place (as /tmp is) where the other user got to the forward's path first.
    let shared = tempfile::Builder::new()
        .prefix("warren-shared-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let trap_dir = shared.path().join("trap");
    std::fs::create_dir(&trap_dir).expect("mkdir");
    std::fs::set_permissions(&trap_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let chown = Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&trap_dir)
        .status()
        .expect("chown");
    assert!(chown.success());
    // The other user's listener accepts every connection and keeps whatever it is sent.
    let listener = user.probe.with_file_name("capture-listener");
    std::fs::copy(binary("capture-listener"), &listener).expect("copy the listener");
    let trap = trap_dir.join("hub.sock");
    let captured = trap_dir.join("captured");
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", &user.uid, "--regid", &user.gid, "--clear-groups"])
        .arg(&listener)
        .arg(&trap)
        .arg(&captured)
        .env_clear();
    let fake = Proc::spawn(
        "another user's listener",
        command,
        shared.path().join("fake.log"),
    );
    let listening = eventually(PATIENCE, || {
        let up = trap.exists();
        async move { if up { Ok(()) } else { Err(()) } }
    })
    .await;
    assert!(
        listening.is_ok(),
        "the listener did not start:\n{}",
        fake.output()
    );

    // Our own hub's key, sent through the trap: refused before a byte of a call is written.
    let cluster = Cluster::hub();
    let err = warren::ClientBuilder::new()
        .socket(&trap)
        .signer(cluster.signer())
        .connect()
        .await
        .expect_err("a socket answered by another user");
    let text = err.to_string();
    assert!(
        text.contains("REFUSED") && text.contains(&format!("uid {}", user.uid)),
        "{text}"
    );
    let output = Command::new(binary("warren"))
        .arg("--connection-file")
        .arg(&cluster.connection_file)
        .arg("--socket")
        .arg(&trap)
        .args(["exec", "--", "env"])
        .output()
        .expect("warren exec");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(255), "{output:?}");
    assert!(stderr.contains("not as you"), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    // It saw the connections, and not one byte on any of them.
    let seen = eventually(PATIENCE, || {
        let text = std::fs::read_to_string(&captured).unwrap_or_default();
        async move {
            if text.lines().count() >= 2 {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await
    .unwrap_or_else(|text| panic!("the listener saw no connection: {text:?}"));
    assert!(
        seen.lines().all(|n| n == "0"),
        "bytes reached the listener: {seen}"
    );
    drop(fake);
}
