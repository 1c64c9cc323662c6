//! The socket's safety: modes under umask 000, refusal of unsafe directories, stale sockets,
//! a second hub, and cleanup on stop.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use warren_tests::*;

#[tokio::test]
async fn under_umask_000_the_directory_is_0700_and_the_socket_and_connection_file_0600() {
    let mut cluster = Cluster::empty();
    // A directory the hub must create itself.
    let nested = cluster.dir().join("run/warren");
    cluster.socket = nested.join("hub.sock");
    cluster.connection_file = nested.join("hub.json");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(binary("warren-hub"))
        .arg("--socket")
        .arg(&cluster.socket)
        .arg("--db")
        .arg(cluster.dir().join("hub.db"));
    let log = cluster.dir().join("hub.log");
    cluster.hub = Some(Proc::spawn("warren-hub (umask 000)", command, log));
    let ready = eventually(PATIENCE, || async {
        if cluster.connection_file.exists() {
            Ok(())
        } else {
            Err(())
        }
    })
    .await;
    assert!(ready.is_ok(), "the hub did not write its connection file");
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&cluster.socket), 0o600);
    assert_eq!(mode(&cluster.connection_file), 0o600);
    cluster
        .client()
        .await
        .engines()
        .await
        .expect("the hub serves");
}

#[test]
fn a_directory_open_to_others_is_refused_with_the_fix() {
    let cluster = Cluster::empty();
    let open = cluster.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = Command::new(binary("warren-hub"));
    command
        .arg("--db")
        .arg(cluster.dir().join("hub.db"))
        .arg("--socket")
        .arg(open.join("hub.sock"));
    let text = refused_start(command);
    assert!(
        text.contains("open to group or others") && text.contains("chmod 700"),
        "{text}"
    );
    assert!(!open.join("hub.sock").exists());
}

#[test]
fn a_symlinked_directory_is_refused() {
    let cluster = Cluster::empty();
    let real = cluster.dir().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = cluster.dir().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let mut command = Command::new(binary("warren-hub"));
    command
        .arg("--db")
        .arg(cluster.dir().join("hub.db"))
        .arg("--socket")
        .arg(link.join("hub.sock"));
    let text = refused_start(command);
    assert!(text.contains("symbolic link"), "{text}");
}

#[test]
#[cfg_attr(
    not(has_root),
    ignore = "needs root (to give a directory to another user)"
)]
fn a_directory_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "SKIPPED: changing a directory's owner needs root; this test runs as uid {}",
            rustix::process::geteuid().as_raw()
        );
        return;
    }
    let cluster = Cluster::empty();
    let theirs = cluster.dir().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown to nobody");
    let mut command = Command::new(binary("warren-hub"));
    command
        .arg("--db")
        .arg(cluster.dir().join("hub.db"))
        .arg("--socket")
        .arg(theirs.join("hub.sock"));
    let text = refused_start(command);
    assert!(text.contains("belongs to uid 65534"), "{text}");
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let mut cluster = Cluster::empty();
    // A socket file with nobody listening, as a crashed hub leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&cluster.socket).expect("bind"));
    assert!(cluster.socket.exists());
    cluster.start_hub(&[]);
    cluster
        .client()
        .await
        .engines()
        .await
        .expect("the new hub serves");
}

#[tokio::test]
async fn a_second_hub_on_the_same_socket_refuses_to_start() {
    let cluster = Cluster::hub();
    let own_db = cluster.dir().join("second.db");
    let own_db = own_db.to_str().expect("utf-8 path");
    let text = refused_start(cluster.hub_command(&["--db", own_db]));
    assert!(text.contains("already serving"), "{text}");
    cluster
        .client()
        .await
        .engines()
        .await
        .expect("the first hub still serves");
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_is_left_alone() {
    let cluster = Cluster::empty();
    std::fs::write(&cluster.socket, b"precious").expect("write");
    let text = refused_start(cluster.hub_command(&[]));
    assert!(text.contains("is not a socket"), "{text}");
    assert_eq!(
        std::fs::read(&cluster.socket).expect("still there"),
        b"precious"
    );
}
