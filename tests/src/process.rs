//! Starting and stopping the real binaries.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use warren::{Client, Job};

/// How long anything in a test may take to come up or go down.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A binary built by `cargo test --workspace`: beside the test executable's `deps` directory.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("WARREN_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current_exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("test executable lives in target/<profile>/deps")
                .to_owned()
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run the tests with `cargo test --workspace`, which builds every binary",
        path.display()
    );
    path
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Self {
        let file = File::create(&log).expect("log file");
        command.stdout(file.try_clone().expect("log file"));
        Self::start(name, command, file, log)
    }

    /// Starts `command` with stdout going to `stdout` and stderr to `log`, for a test that
    /// checks the bytes a command writes to stdout alone.
    pub fn spawn_with_stdout(
        name: &str,
        mut command: Command,
        stdout: PathBuf,
        log: PathBuf,
    ) -> Self {
        command.stdout(File::create(&stdout).expect("stdout file"));
        let file = File::create(&log).expect("log file");
        Self::start(name, command, file, log)
    }

    fn start(name: &str, mut command: Command, stderr: File, log: PathBuf) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, signal);
    }

    /// Its exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for it to exit, up to `limit`, without blocking the test's runtime (whose
    /// connections must keep running to see the hub's goodbye).
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        eventually(limit, || {
            let status = self.try_wait();
            async move { status.ok_or(()) }
        })
        .await
        .ok()
    }

    /// Waits (up to [`PATIENCE`]) for it to exit, and checks that it succeeded; `when` says
    /// why it should have exited, for the message if it did not.
    pub async fn wait_for_success(&mut self, when: &str) {
        let Some(status) = self.wait_for_exit(PATIENCE).await else {
            panic!("{} did not exit {when}:\n{}", self.name, self.output());
        };
        assert!(
            status.success(),
            "{} exited {when} with {status}:\n{}",
            self.name,
            self.output()
        );
    }

    /// Waits (up to [`PATIENCE`]) until what it has written contains `text`.
    pub async fn wait_for_output(&self, text: &str) {
        let seen = eventually(PATIENCE, || {
            let log = self.output();
            async move { if log.contains(text) { Ok(()) } else { Err(()) } }
        })
        .await;
        assert!(
            seen.is_ok(),
            "{} never wrote {text:?}:\n{}",
            self.name,
            self.output()
        );
    }

    /// What it has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // A chance to clean up (a tunnel stops its ssh, a hub removes its socket), then
            // no more chances.
            self.signal(rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.output()
            );
        }
    }
}

/// A hub and its engines in a private temp dir.
#[derive(Debug)]
pub struct Cluster {
    /// The engines, in start order.
    pub engines: Vec<Proc>,
    /// The hub, if running.
    pub hub: Option<Proc>,
    /// The hub's socket.
    pub socket: PathBuf,
    /// The hub's connection file.
    pub connection_file: PathBuf,
    // Dropped last, after every process is gone.
    dir: TempDir,
}

impl Cluster {
    /// A temp dir with a socket path in it, and no processes yet.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("warren-test-")
            .tempdir()
            .expect("tempdir");
        // The hub refuses a socket directory others can enter; tempfile's mode follows the umask.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod 700 the temp dir");
        let socket = dir.path().join("hub.sock");
        let connection_file = dir.path().join("hub.json");
        Self {
            engines: Vec::new(),
            hub: None,
            socket,
            connection_file,
            dir,
        }
    }

    /// A running hub with default settings and no engines.
    pub fn hub() -> Self {
        Self::hub_with(&[])
    }

    /// A running hub started with extra flags.
    pub fn hub_with(args: &[&str]) -> Self {
        let mut cluster = Self::empty();
        cluster.start_hub(args);
        cluster
    }

    /// A running hub with `n` one-slot engines registered.
    pub async fn with_engines(n: usize) -> Self {
        Self::hub_with_engines(&[], n).await
    }

    /// A running hub started with extra flags, with `n` one-slot engines registered.
    pub async fn hub_with_engines(args: &[&str], n: usize) -> Self {
        let mut cluster = Self::hub_with(args);
        for _ in 0..n {
            cluster.add_engine(&[]);
        }
        cluster.wait_for_engines(n).await;
        cluster
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The command that starts a hub on this cluster's socket.
    pub fn hub_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("warren-hub"));
        command.arg("--socket").arg(&self.socket);
        if !args.iter().any(|a| *a == "--db" || a.starts_with("--db=")) {
            command.arg("--db").arg(self.dir().join("hub.db"));
        }
        command.args(args).env("RUST_LOG", "warn,warren_hub=debug");
        command
    }

    /// Starts the hub and waits until it accepts signed calls.
    pub fn start_hub(&mut self, args: &[&str]) {
        let log = self.dir().join(format!("hub-{}.log", rand_suffix()));
        let command = self.hub_command(args);
        self.hub = Some(Proc::spawn("warren-hub", command, log));
        self.wait_for_hub();
    }

    fn wait_for_hub(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let hub = self.hub.as_mut().expect("hub");
            if let Some(status) = hub.try_wait() {
                panic!("warren-hub exited early ({status}):\n{}", hub.output());
            }
            // The connection file must be this hub's (a killed hub leaves its own behind).
            let pid = hub.pid();
            let ours = warren_proto::connection::ConnectionInfo::load(&self.connection_file)
                .is_ok_and(|info| info.hub_pid == pid);
            if ours && std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "warren-hub did not come up in time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts an engine with extra flags; returns its index in `engines`.
    pub fn add_engine(&mut self, args: &[&str]) -> usize {
        let spill = self.dir().join(format!("spill-{}", self.engines.len()));
        let locate = [
            OsStr::new("--connection-file"),
            self.connection_file.as_os_str(),
        ];
        let mut command = self.engine_command(&locate, &spill);
        command
            .args(["--max-backoff-ms", "200", "--kill-grace-ms", "500"])
            .args(args);
        self.push_engine("warren-engine", command)
    }

    /// The command that starts an engine finding the hub by the flags `locate`, with its
    /// spill directory inside `spill` and debug logs, to add flags to; start it with
    /// [`Cluster::push_engine`].
    pub fn engine_command(&self, locate: &[&OsStr], spill: &Path) -> Command {
        let mut command = Command::new(binary("warren-engine"));
        command
            .args(locate)
            .arg("--spill-dir")
            .arg(spill)
            .env("RUST_LOG", "warn,warren_engine=debug");
        command
    }

    /// Starts an engine's command, logging to the cluster's dir; returns its index in
    /// `engines`.
    pub fn push_engine(&mut self, name: &str, command: Command) -> usize {
        let index = self.engines.len();
        let log = self.dir().join(format!("engine-{index}.log"));
        let name = format!("{name} #{index}");
        self.engines.push(Proc::spawn(&name, command, log));
        index
    }

    /// A signed SDK client.
    pub async fn client(&self) -> Client {
        Client::connect(&self.connection_file)
            .await
            .expect("connect to the test hub")
    }

    /// Waits until `n` engines are registered.
    pub async fn wait_for_engines(&self, n: usize) {
        let client = self.client().await;
        let mut last = 0;
        let ok = eventually(PATIENCE, || {
            let client = client.clone();
            async move {
                let count = client.engines().await.map(|e| e.len()).unwrap_or(0);
                (count == n).then_some(()).ok_or(count)
            }
        })
        .await
        .map_err(|count| last = count);
        assert!(ok.is_ok(), "expected {n} engines, saw {last}");
    }

    /// The `warren` CLI pointed at this hub, to add arguments to.
    pub fn cli_command(&self) -> Command {
        let mut command = Command::new(binary("warren"));
        command
            .arg("--connection-file")
            .arg(&self.connection_file)
            .stdin(Stdio::null());
        command
    }

    /// Runs the `warren` CLI against this hub; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.cli_command().args(args).output().expect("run warren");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Polls `check` until it returns `Ok`, or gives back its last `Err` after `limit`.
pub async fn eventually<T, E, F, Fut>(limit: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() > deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// How long a gate holds a task before the task fails: far past any wait a test bounds by
/// [`PATIENCE`], so only a test that hung (or never opens its gate) gets there, and the task
/// does not outlive it by much.
pub const GATE_LIMIT: Duration = Duration::from_secs(300);

/// The exit status of a task whose gate was never opened.
pub const GATE_NEVER_OPENED: i32 = 98;

/// Shell text that holds a task until the test creates `gate`, so a test can hold a task at a
/// known point and release it. The gate never opens by itself: past [`GATE_LIMIT`] the task
/// fails loudly (status [`GATE_NEVER_OPENED`], a message on stderr) rather than go on.
pub fn wait_for_gate(gate: &Path) -> String {
    gate_script(gate, GATE_LIMIT)
}

/// Submits a task that does nothing but hold at `gate` until the test opens it; its id.
pub async fn submit_held(client: &Client, gate: &Path) -> u64 {
    client
        .submit(Job::script(wait_for_gate(gate)))
        .await
        .expect("submit a task held at a gate")[0]
}

fn gate_script(gate: &Path, limit: Duration) -> String {
    let polls = limit.as_millis() / 50;
    format!(
        "_w=0; while [ ! -e '{gate}' ]; do \
           if [ $_w -ge {polls} ]; then echo 'test gate {gate} was never opened' >&2; exit {GATE_NEVER_OPENED}; fi; \
           sleep 0.05; _w=$((_w+1)); \
         done",
        gate = gate.display()
    )
}

fn find(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| extra.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// A tool the tests need, or a loud skip (a failure where CI promised it).
pub fn require_tool(tool: &str, extra: &[&str], env: &str) -> Option<PathBuf> {
    let found = find(tool, extra);
    if found.is_none() {
        assert!(
            std::env::var_os(env).is_none(),
            "{tool} is required ({env} is set) but was not found"
        );
        eprintln!("\n*** SKIPPED: {tool} is not installed; this test needs it ***\n");
    }
    found
}

/// A file's permission bits (of the path itself, not a link's target).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// Runs a hub expected to refuse to start, and returns what it said.
pub fn refused_start(mut command: Command) -> String {
    let output = command.output().expect("run warren-hub");
    assert!(
        !output.status.success(),
        "the hub should have refused to start"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> std::process::Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("run sh")
    }

    #[test]
    fn a_gate_never_opens_by_itself_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = dir.path().join("gate");
        let shut = sh(&format!(
            "{}; echo through",
            gate_script(&gate, Duration::from_millis(100))
        ));
        assert_eq!(shut.status.code(), Some(GATE_NEVER_OPENED), "{shut:?}");
        assert!(shut.stdout.is_empty(), "{shut:?}");
        assert!(
            String::from_utf8_lossy(&shut.stderr).contains("was never opened"),
            "{shut:?}"
        );

        std::fs::write(&gate, b"").expect("open the gate");
        let open = sh(&format!("{}; echo through", wait_for_gate(&gate)));
        assert!(open.status.success(), "{open:?}");
        assert_eq!(open.stdout, b"through\n");
    }
}
