//! Starting a session's interpreter as the cell protocol says: its own process group, stdin
//! on /dev/null, stdout and stderr on pipes, the command pipe on fd 3 and the reply pipe on
//! fd 4, named by `WARREN_CELL_IN` and `WARREN_CELL_OUT`, and no other fd open.
//!
//! The two protocol fds are put in place between fork and exec (`pre_exec`): made inheritable
//! in the engine instead, they would leak into every task another runner spawns meanwhile.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use warren_proto::v1::{SessionKind, SessionSpec};

use crate::process::{ENGINE_PID_VAR, StartError};

/// The python driver, run as `python3 -c DRIVER`.
pub const PYTHON_DRIVER: &str = include_str!("../drivers/python.py");
/// The bash driver, run as `bash --noprofile --norc -c DRIVER bash`.
pub const BASH_DRIVER: &str = include_str!("../drivers/bash.sh");

/// The fd the adapter reads commands from, and the one it writes replies to.
const CELL_IN: i32 = 3;
const CELL_OUT: i32 = 4;
/// The engine's ends of the protocol pipes are moved at least this high before the fork, so
/// that putting them on 3 and 4 in the child never overwrites one with the other.
const HIGH_FD: i32 = 10;
/// Pipe size for stdout and stderr, as a task's.
const PIPE_SIZE: usize = 1 << 20;

/// A started interpreter and the engine's ends of its pipes.
#[derive(Debug)]
pub(super) struct Started {
    /// The process (its pid is its process group's id).
    pub(super) child: Child,
    /// Where `run` frames go.
    pub(super) commands: pipe::Sender,
    /// Where `ready` and `done` come from.
    pub(super) replies: pipe::Receiver,
    /// The interpreter's fd 1.
    pub(super) stdout: pipe::Receiver,
    /// Its fd 2.
    pub(super) stderr: pipe::Receiver,
}

/// The argv that starts a session of this spec.
pub(super) fn argv(spec: &SessionSpec) -> Vec<String> {
    let or = |default: &str| {
        if spec.argv.is_empty() {
            vec![default.to_owned()]
        } else {
            spec.argv.clone()
        }
    };
    match spec.kind() {
        SessionKind::Python => {
            let mut argv = or("python3");
            argv.extend(["-c".to_owned(), PYTHON_DRIVER.to_owned()]);
            argv
        }
        SessionKind::Bash => {
            let mut argv = or("bash");
            argv.extend(["--noprofile", "--norc", "-c", BASH_DRIVER, "bash"].map(str::to_owned));
            argv
        }
        SessionKind::Custom | SessionKind::Unspecified => spec.argv.clone(),
    }
}

fn io_error(program: &str, what: &str, err: impl std::fmt::Display) -> StartError {
    StartError {
        exit_code: crate::process::EXIT_CANNOT_RUN,
        reason: format!("cannot start `{program}`: {what}: {err}"),
    }
}

/// A pipe whose ends are close-on-exec.
fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Starts the interpreter of session `id`.
pub(super) fn start(id: u64, spec: &SessionSpec) -> Result<Started, StartError> {
    let argv = argv(spec);
    let Some((program, args)) = argv.split_first() else {
        return Err(StartError {
            exit_code: crate::process::EXIT_CANNOT_RUN,
            reason: "the session has no program to run".into(),
        });
    };
    let fail = |what: &str, err: std::io::Error| io_error(program, what, err);
    let mut command = Command::new(program);
    command.args(args);
    if !spec.cwd.is_empty() {
        let cwd = Path::new(&spec.cwd);
        if !cwd.is_dir() {
            return Err(StartError {
                exit_code: crate::process::EXIT_CANNOT_RUN,
                reason: format!(
                    "working directory {} does not exist on this engine (or is not a directory)",
                    spec.cwd
                ),
            });
        }
        command.current_dir(cwd);
    }
    for name in warren_proto::OWN_ENV_VARS.iter().chain(&["_"]) {
        command.env_remove(name);
    }
    command
        .env(ENGINE_PID_VAR, std::process::id().to_string())
        .env("WARREN_SESSION_ID", id.to_string())
        .envs(&spec.env)
        .env("WARREN_CELL_IN", CELL_IN.to_string())
        .env("WARREN_CELL_OUT", CELL_OUT.to_string())
        .env("WARREN_CELL_PROTOCOL", "1");

    let (cmd_read, cmd_write) = pipe_pair().map_err(|e| fail("a pipe", e))?;
    let (reply_read, reply_write) = pipe_pair().map_err(|e| fail("a pipe", e))?;
    let (out_read, out_write) = pipe_pair().map_err(|e| fail("a pipe", e))?;
    let (err_read, err_write) = pipe_pair().map_err(|e| fail("a pipe", e))?;
    for fd in [&out_read, &err_read] {
        // The kernel may cap it; the default 64 KiB still works.
        let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
    }
    let high = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, HIGH_FD);
    let cmd_child = high(&cmd_read).map_err(|e| fail("an fd", e.into()))?;
    let reply_child = high(&reply_write).map_err(|e| fail("an fd", e.into()))?;
    drop((cmd_read, reply_write));
    let (cmd_fd, reply_fd) = (cmd_child.as_raw_fd(), reply_child.as_raw_fd());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(err_write))
        // Its own group, so a SIGINT reaches the cell's foreground children too, and nothing
        // else.
        .process_group(0)
        .kill_on_drop(true);
    put_protocol_fds(&mut command, cmd_fd, reply_fd);
    let child = command
        .spawn()
        .map_err(|err| StartError::from_spawn(program, &err))?;
    // The child has its copies; the engine's go (the command holds the stdout and stderr ends).
    drop((command, cmd_child, reply_child));
    let receiver = |fd| pipe::Receiver::from_owned_fd(fd);
    Ok(Started {
        child,
        commands: pipe::Sender::from_owned_fd(cmd_write).map_err(|e| fail("a pipe", e))?,
        replies: receiver(reply_read).map_err(|e| fail("a pipe", e))?,
        stdout: receiver(out_read).map_err(|e| fail("a pipe", e))?,
        stderr: receiver(err_read).map_err(|e| fail("a pipe", e))?,
    })
}

/// Has the child put `cmd` on fd 3 and `reply` on fd 4 (both inheritable there) before exec.
#[allow(unsafe_code)]
fn put_protocol_fds(command: &mut Command, cmd: i32, reply: i32) {
    // SAFETY: the closure runs in the child between fork and exec and makes only dup2 calls,
    // which are async-signal-safe; it allocates nothing and takes no locks. Both fds are open
    // (the engine holds them until spawn returns) and above 9, so neither dup2 closes the
    // other's source; dup2 clears close-on-exec on its target.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(cmd, CELL_IN) < 0 || libc::dup2(reply, CELL_OUT) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
