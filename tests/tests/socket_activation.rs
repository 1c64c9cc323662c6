//! systemd socket activation, for real with `systemd-socket-activate`: the hub starts on the
//! first call, which it serves, in the one process the activator execs (nothing extra starts);
//! it tells a `NOTIFY_SOCKET` it is ready; it leaves systemd's socket in place when it stops;
//! and it refuses a passed socket that breaks its rules, saying which setting to change.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use warren_tests::*;

fn activator() -> Option<PathBuf> {
    require_tool(
        "systemd-socket-activate",
        &[
            "/usr/bin/systemd-socket-activate",
            "/lib/systemd/systemd-socket-activate",
        ],
        "WARREN_REQUIRE_SOCKET_ACTIVATE",
    )
}

/// `systemd-socket-activate [extra] -l SOCKET -- warren-hub HUB_ARGS`, started; it waits for a
/// first connection, then execs the hub with the listening socket as descriptor 3.
fn activate(
    tool: &Path,
    cluster: &Cluster,
    extra: &[&str],
    socket: &Path,
    hub_args: &[&str],
) -> Proc {
    let mut command = Command::new(tool);
    command
        .args(extra)
        .arg("-l")
        .arg(socket)
        .arg("--")
        .arg(binary("warren-hub"))
        .args(["--db", ":memory:"])
        .args(hub_args)
        .env("RUST_LOG", "warn,warren_hub=info");
    let process = Proc::spawn(
        "systemd-socket-activate",
        command,
        cluster.dir().join("activated.log"),
    );
    let datagram = extra.contains(&"-d");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !ready(socket, datagram) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        ready(socket, datagram),
        "the activator never listened:\n{}",
        process.output()
    );
    process
}

/// Whether the socket at `path` is bound and, unless a datagram socket, listening, by the
/// kernel's table (/proc/net/unix): a connection made between bind and listen would be refused,
/// and one made to test it would start the hub.
fn ready(path: &Path, datagram: bool) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.display().to_string();
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is "listening".
        fields.len() == 8 && fields[7] == path && (datagram || fields[3] == "00010000")
    })
}

/// The program a process runs now.
fn exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).expect("read /proc/PID/exe")
}

fn warren(socket: &Path, key: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary("warren"))
        .arg("--socket")
        .arg(socket)
        .arg("--key-file")
        .arg(key)
        .args(args)
        .output()
        .expect("run warren");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn new_key(cluster: &Cluster) -> PathBuf {
    let key = cluster.dir().join("hub.key");
    let status = Command::new(binary("warren-hub"))
        .arg("--new-key-file")
        .arg(&key)
        .output()
        .expect("warren-hub --new-key-file");
    assert!(status.status.success(), "{status:?}");
    key
}

#[tokio::test]
#[cfg_attr(
    not(has_socket_activate),
    ignore = "needs systemd-socket-activate: apt-get install systemd"
)]
async fn the_first_call_starts_the_hub_which_serves_it_and_says_it_is_ready() {
    let Some(tool) = activator() else { return };
    let mut cluster = Cluster::empty();
    let key = new_key(&cluster);
    let notify_path = cluster.dir().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let socket = cluster.socket.clone();
    let notify_env = format!("NOTIFY_SOCKET={}", notify_path.display());
    let process = activate(
        &tool,
        &cluster,
        &["-E", &notify_env],
        &socket,
        &["--key-file", key.to_str().expect("utf-8")],
    );
    // What a .socket unit's SocketMode=0600 gives (the activator binds with its own mode).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let pid = process.pid();
    cluster.hub = Some(process);
    assert!(
        !exe(pid).ends_with("warren-hub"),
        "nothing runs the hub before a call arrives"
    );

    // The first call is served: by the hub the activator became, with no other process.
    let (status, stdout, stderr) = warren(&socket, &key, &["version"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("protocol {}", warren_proto::PROTOCOL_VERSION)),
        "{stdout}"
    );
    assert!(exe(pid).ends_with("warren-hub"), "{:?}", exe(pid));
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).expect("children");
    assert_eq!(children.trim(), "", "the hub started nothing extra");
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("READY=1 within the patience");
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(message.starts_with("READY=1\n"), "{message}");
    assert!(message.contains(&socket.display().to_string()), "{message}");
    let (status, _, stderr) = warren(&socket, &key, &["engines"]);
    assert_eq!(status, 0, "{stderr}");

    // The socket is systemd's: it stays for the next start; the connection file goes.
    let (status, _, stderr) = warren(&socket, &key, &["shutdown"]);
    assert_eq!(status, 0, "{stderr}");
    let mut process = cluster.hub.take().expect("hub");
    process.wait_for_success("after `warren shutdown`").await;
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(socket.exists(), "the activated socket is left in place");
    assert!(!cluster.connection_file.exists());
}

/// Starts the activator with a bad setup, makes the first connection, and returns what the
/// hub said as it refused.
async fn refusal(
    cluster: &mut Cluster,
    extra: &[&str],
    socket: &Path,
    hub_args: &[&str],
    mode: u32,
) -> String {
    let Some(tool) = activator() else {
        return String::new();
    };
    let process = activate(&tool, cluster, extra, socket, hub_args);
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if extra.contains(&"-d") {
        let client = UnixDatagram::unbound().expect("datagram");
        client.send_to(b"hello", socket).expect("send");
    } else {
        UnixStream::connect(socket).expect("the activator listens");
    }
    let mut process = process;
    let status = process.wait_for_exit(PATIENCE).await;
    let log = process.output();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the hub should refuse and exit ({status:?}):\n{log}"
    );
    log
}

#[tokio::test]
#[cfg_attr(
    not(has_socket_activate),
    ignore = "needs systemd-socket-activate: apt-get install systemd"
)]
async fn a_passed_socket_that_breaks_the_hubs_rules_is_refused_with_the_fix() {
    if activator().is_none() {
        return;
    }
    let mut cluster = Cluster::empty();
    let socket = cluster.socket.clone();

    let log = refusal(&mut cluster, &[], &socket, &[], 0o644).await;
    assert!(
        log.contains("mode 0644") && log.contains("SocketMode=0600"),
        "{log}"
    );
    std::fs::remove_file(&socket).expect("rm");

    let open = cluster.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = refusal(&mut cluster, &[], &open.join("hub.sock"), &[], 0o600).await;
    assert!(log.contains("DirectoryMode=0700"), "{log}");

    let log = refusal(&mut cluster, &["-d"], &socket, &[], 0o600).await;
    assert!(
        log.contains("a datagram socket") && log.contains("ListenStream="),
        "{log}"
    );
    std::fs::remove_file(&socket).expect("rm");

    let other = cluster.dir().join("other.sock");
    let other = other.to_str().expect("utf-8");
    let log = refusal(&mut cluster, &[], &socket, &["--socket", other], 0o600).await;
    assert!(
        log.contains("differs from the socket systemd passed"),
        "{log}"
    );
}

/// A setting of a unit file in contrib/systemd.
fn unit_setting(unit: &str, key: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/systemd")
        .join(unit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{unit} has no {key}="))
        .to_owned()
}

/// A unit's value with systemd's specifiers as a user manager would expand them, in `dir`.
fn expand(value: &str, dir: &Path) -> String {
    value
        .replace("%t", &dir.join("run").display().to_string())
        .replace("%E", &dir.join("config").display().to_string())
        .replace("%i", "1")
}

/// A unit's ExecStart=, expanded, with the program replaced by the one cargo built.
fn exec_start(unit: &str, dir: &Path) -> Command {
    let line = expand(&unit_setting(unit, "ExecStart"), dir);
    let mut words = line.split_whitespace();
    let program = words.next().expect("a program");
    let name = Path::new(program).file_name().expect("a file name");
    let mut command = Command::new(binary(name.to_str().expect("utf-8")));
    command.args(words);
    command
}

#[tokio::test]
#[cfg_attr(
    not(has_socket_activate),
    ignore = "needs systemd-socket-activate: apt-get install systemd"
)]
async fn the_shipped_units_work_an_engine_starts_the_hub_by_calling_it() {
    let Some(tool) = activator() else { return };
    let mut cluster = Cluster::empty();
    let dir = cluster.dir().to_owned();
    // What systemd does for the .socket unit: the directory with DirectoryMode, the socket.
    let socket = PathBuf::from(expand(
        &unit_setting("warren-hub.socket", "ListenStream"),
        &dir,
    ));
    let directory_mode =
        u32::from_str_radix(&unit_setting("warren-hub.socket", "DirectoryMode"), 8).expect("octal");
    let socket_mode =
        u32::from_str_radix(&unit_setting("warren-hub.socket", "SocketMode"), 8).expect("octal");
    let run = socket.parent().expect("dir");
    std::fs::create_dir_all(run).expect("mkdir");
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(directory_mode)).expect("chmod");
    // The README's setup step: the key file.
    let config = dir.join("config/warren");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let status = Command::new(binary("warren-hub"))
        .arg("--new-key-file")
        .arg(config.join("hub.key"))
        .status()
        .expect("warren-hub --new-key-file");
    assert!(status.success());

    // The hub's service behind the activator.
    let hub = exec_start("warren-hub.service", &dir);
    let mut command = Command::new(&tool);
    command
        .arg("-l")
        .arg(&socket)
        .arg("--")
        .arg(hub.get_program())
        .args(hub.get_args())
        .args(["--db", ":memory:"]);
    let process = Proc::spawn("activated hub", command, dir.join("activated.log"));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !ready(&socket, false) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(socket_mode)).expect("chmod");
    let pid = process.pid();
    cluster.hub = Some(process);

    // An engine instance: its first call starts the hub.
    let mut engine = exec_start("warren-engine@.service", &dir);
    engine.arg("--spill-dir").arg(&dir);
    cluster.push_engine("warren-engine@1", engine);
    let key = config.join("hub.key");
    let registered = eventually(PATIENCE, || {
        let (status, ids, stderr) = warren(&socket, &key, &["engines", "-q"]);
        async move {
            if status == 0 && ids.trim() == "1" {
                Ok(())
            } else {
                Err(format!("{status} {ids} {stderr}"))
            }
        }
    })
    .await;
    assert!(registered.is_ok(), "{registered:?}");
    assert!(exe(pid).ends_with("warren-hub"));
    let (_, uuid, _) = warren(&socket, &key, &["engines", "--json"]);
    assert!(
        uuid.contains("\"engine-1\""),
        "the unit's stable uuid: {uuid}"
    );
}
