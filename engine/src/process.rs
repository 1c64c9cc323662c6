//! Starting a task's process in its own process group, and signalling that group.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;
use warren_proto::v1::{TaskSpec, task_spec};

/// The variable every task's processes carry: the pid of the engine that started them.
pub const ENGINE_PID_VAR: &str = "WARREN_ENGINE_PID";

/// Exit status of a task whose program was not found, as a shell reports it.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status of a task whose program could not be run (not executable, a directory, a bad
/// working directory), as a shell and `docker exec` report it.
pub const EXIT_CANNOT_RUN: i32 = 126;

/// The signals a task must be able to receive: what `warren interrupt` and a foreground
/// `warren exec` forward, a terminal's Ctrl-C and Ctrl-\\, and a hangup.
const TASK_SIGNALS: [i32; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Undoes an ignore of a task signal that this process was started with, so that the tasks
/// it starts don't inherit it: `nohup` ignores SIGHUP, and a shell without job control starts
/// `cmd &` with SIGINT and SIGQUIT ignored. An ignored signal stays ignored through exec (a
/// handler does not), and a task that ignores SIGINT can't be interrupted. Handlers the
/// process installs later (the engine's own, for stopping) are not affected.
#[allow(unsafe_code)]
pub fn undo_inherited_ignores() {
    for signal in TASK_SIGNALS {
        // SAFETY: sigaction with a null new action only reads the current disposition into
        // `current`, a zeroed struct we own; signal() then sets the default action, which
        // runs none of our code. Both are plain system calls on valid signal numbers.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
            {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    }
}

/// Why a task's process could not start: the exit status to report and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// 127 (not found) or 126 (found but could not be run).
    pub exit_code: i32,
    /// What went wrong, in words.
    pub reason: String,
}

impl StartError {
    fn cannot_run(reason: String) -> Self {
        Self {
            exit_code: EXIT_CANNOT_RUN,
            reason,
        }
    }

    /// Classifies the error of spawning `program`, as a shell would.
    pub fn from_spawn(program: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        let is_dir = Path::new(program).is_dir() && program.contains('/');
        match err.kind() {
            ErrorKind::NotFound if program.contains('/') => Self {
                exit_code: EXIT_NOT_FOUND,
                reason: format!("`{program}`: no such file on this engine"),
            },
            ErrorKind::NotFound => Self {
                exit_code: EXIT_NOT_FOUND,
                reason: format!("`{program}`: command not found on this engine's PATH"),
            },
            _ if is_dir => Self::cannot_run(format!("`{program}` is a directory")),
            ErrorKind::PermissionDenied => Self::cannot_run(format!(
                "`{program}` cannot be run: permission denied (is it executable?)"
            )),
            _ if err.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error()) => {
                Self::cannot_run(format!(
                    "`{program}` cannot be run: not an executable format"
                ))
            }
            _ => Self::cannot_run(format!("cannot run `{program}`: {}", plain(err))),
        }
    }
}

/// An operating system error without its ` (os error N)` suffix.
fn plain(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The program a spec runs (`sh` for a script), as messages name it.
pub fn program(spec: &TaskSpec) -> &str {
    match &spec.command {
        Some(task_spec::Command::Argv(argv)) => argv.args.first().map_or("", String::as_str),
        _ => "sh",
    }
}

/// Builds the command for a task: argv directly, a script with `sh -c`. Its environment is
/// the engine's, without the variables that configure warren itself
/// ([`warren_proto::OWN_ENV_VARS`] and the shell's `_`), plus `WARREN_TASK_ID` and
/// `WARREN_ENGINE_PID`, plus the request's variables, which win.
pub fn command(task_id: u64, spec: &TaskSpec) -> Result<Command, StartError> {
    let mut command = match &spec.command {
        Some(task_spec::Command::Argv(argv)) => {
            let (program, args) = argv
                .args
                .split_first()
                .ok_or_else(|| StartError::cannot_run("the task has an empty argv".to_owned()))?;
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        Some(task_spec::Command::Script(script)) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(script);
            command
        }
        Some(task_spec::Command::Code(_)) => {
            return Err(StartError::cannot_run(
                "a cell's code runs in a session, not as a task".to_owned(),
            ));
        }
        None => return Err(StartError::cannot_run("the task has no command".to_owned())),
    };
    if !spec.cwd.is_empty() {
        // Checked here because spawn's error for a bad cwd looks like a missing program.
        let cwd = Path::new(&spec.cwd);
        if !cwd.is_dir() {
            return Err(StartError::cannot_run(format!(
                "working directory {} does not exist on this engine (or is not a directory)",
                spec.cwd
            )));
        }
        if rustix::fs::access(cwd, rustix::fs::Access::EXEC_OK).is_err() {
            return Err(StartError::cannot_run(format!(
                "working directory {}: permission denied",
                spec.cwd
            )));
        }
        command.current_dir(&spec.cwd);
    }
    for name in warren_proto::OWN_ENV_VARS.iter().chain(&["_"]) {
        command.env_remove(name);
    }
    command
        .env(ENGINE_PID_VAR, std::process::id().to_string())
        .env("WARREN_TASK_ID", task_id.to_string())
        .envs(&spec.env)
        .stdin(if spec.stdin.is_empty() && !spec.stream_stdin {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if spec.tty.is_none() {
        // Its own group, so signals reach everything it starts and nothing else. (A task with
        // a terminal gets a session of its own instead, whose group is the same: `pty`.)
        command.process_group(0);
    }
    // No pre_exec hook here: without one the standard library spawns with posix_spawn, which
    // is much cheaper than fork for every task. Cleanup after a killed engine is the guard's job.
    Ok(command)
}

/// Sends `signal` to every process in the task's group; a group already gone is not an error.
pub fn signal_group(pgid: u32, signal: i32) {
    let (Some(pid), Some(signal)) = (
        rustix::process::Pid::from_raw(pgid as i32),
        rustix::process::Signal::from_named_raw(signal),
    ) else {
        return;
    };
    if let Err(err) = rustix::process::kill_process_group(pid, signal)
        && err != rustix::io::Errno::SRCH
    {
        tracing::warn!(pgid, signal = signal.as_raw(), %err, "could not signal the task's process group");
    }
}

/// Whether a process exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Kills what tasks of engines that died without cleaning up (SIGKILL) left running:
/// processes of this user whose environment names the engine pid `dead` (or, with `None`,
/// any engine pid that is no longer alive). Returns how many were killed.
pub fn kill_orphans(dead: Option<u32>) -> usize {
    let me = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let owned = std::os::unix::fs::MetadataExt::uid(&match entry.metadata() {
            Ok(meta) => meta,
            Err(_) => continue,
        }) == me;
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let engine = environ
            .split(|&b| b == 0)
            .filter_map(|var| std::str::from_utf8(var).ok())
            .find_map(|var| {
                var.strip_prefix(ENGINE_PID_VAR)?
                    .strip_prefix('=')?
                    .parse::<u32>()
                    .ok()
            });
        let Some(engine) = engine else {
            continue;
        };
        let orphaned = match dead {
            Some(dead) => engine == dead,
            None => !alive(engine),
        };
        if !owned || !orphaned {
            continue;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(pid)
            && rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Starts the guard: a small process that outlives this engine only to kill what its tasks
/// left running if the engine is killed outright (it gets SIGTERM from the kernel when the
/// engine dies, `PR_SET_PDEATHSIG`).
pub fn start_guard() -> std::io::Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .arg("--guard")
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        // Its own group: a Ctrl-C meant for the engine does not reach it.
        .process_group(0)
        .spawn()
}

/// The guard's life: wait for the engine to die, then clean up after it.
pub fn guard(engine: u32) -> std::io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
    let engine_alive =
        || rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) == Some(engine);
    if engine_alive() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (mut term, mut int, mut hup) = (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            );
            // Only the engine's death ends the watch; stray signals are ignored.
            while engine_alive() {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            std::io::Result::Ok(())
        })?;
    }
    let killed = kill_orphans(Some(engine));
    if killed > 0 {
        eprintln!(
            "warren-engine guard: killed {killed} processes left by tasks of engine {engine}"
        );
    }
    Ok(())
}
