//! A task's stdout and stderr pipes. The engine holds a copy of the task's ends until it has
//! reaped the process, so that a task's exit wakes the engine once, not twice.
//!
//! A process closes its files before it becomes a zombie. If the task held the only write
//! ends, its exit would first wake the engine with the pipes' end, and a few microseconds
//! later again with the process's; on a busy core the first wake-up also preempts the exiting
//! task. Held until the wait returns, the pipes end while the engine is already awake.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use tokio::net::unix::pipe;
use tokio::process::Command;

/// A task's output pipes, as the engine holds them.
#[derive(Debug)]
pub(super) struct OutputPipes {
    /// What the task writes to fd 1.
    pub(super) stdout: pipe::Receiver,
    /// What the task writes to fd 2.
    pub(super) stderr: pipe::Receiver,
    /// The engine's copies of the task's ends.
    pub(super) task_ends: TaskEnds,
}

/// The engine's copies of a task's ends of its output pipes: dropped once the process is
/// reaped, the pipes end when nothing else the task started holds them.
#[derive(Debug)]
pub(super) struct TaskEnds {
    _ends: [OwnedFd; 2],
}

impl OutputPipes {
    /// Makes the pipes and gives their write ends to `command` as its stdout and stderr.
    pub(super) fn attach(command: &mut Command) -> io::Result<Self> {
        // Both ends are close-on-exec: only the task's fds 1 and 2 reach it.
        let (stdout, stdout_end) = io::pipe()?;
        let (stderr, stderr_end) = io::pipe()?;
        let task_ends = TaskEnds {
            _ends: [
                stdout_end.try_clone()?.into(),
                stderr_end.try_clone()?.into(),
            ],
        };
        command
            .stdout(Stdio::from(stdout_end))
            .stderr(Stdio::from(stderr_end));
        Ok(Self {
            stdout: pipe::Receiver::from_owned_fd(stdout.into())?,
            stderr: pipe::Receiver::from_owned_fd(stderr.into())?,
            task_ends,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Reads what is in the pipe now; `None` once it has ended.
    fn read_now(pipe: &pipe::Receiver) -> Option<Vec<u8>> {
        let mut buffer = [0u8; 64];
        match pipe.try_read(&mut buffer) {
            Ok(0) => None,
            Ok(read) => Some(buffer[..read].to_vec()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Some(Vec::new()),
            Err(err) => panic!("reading the pipe: {err}"),
        }
    }

    #[tokio::test]
    async fn a_tasks_pipes_end_only_once_the_engine_lets_go_of_its_ends() {
        let mut command = Command::new("sh");
        command.arg("-c").arg("echo out; echo err >&2");
        let pipes = OutputPipes::attach(&mut command).expect("pipes");
        let mut child = command.spawn().expect("spawn sh");
        drop(command);
        assert!(child.wait().await.expect("wait").success());
        let OutputPipes {
            mut stdout,
            mut stderr,
            task_ends,
        } = pipes;
        // The task is gone, but its pipes have not ended: what it wrote is there, then nothing.
        assert_eq!(read_now(&stdout), Some(b"out\n".to_vec()));
        assert_eq!(read_now(&stdout), Some(Vec::new()), "ended while held");
        assert_eq!(read_now(&stderr), Some(b"err\n".to_vec()));
        drop(task_ends);
        let (mut rest_out, mut rest_err) = (Vec::new(), Vec::new());
        stdout
            .read_to_end(&mut rest_out)
            .await
            .expect("stdout ends");
        stderr
            .read_to_end(&mut rest_err)
            .await
            .expect("stderr ends");
        assert!(rest_out.is_empty() && rest_err.is_empty());
    }
}
