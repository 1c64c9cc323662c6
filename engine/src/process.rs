//! Starting a task's process in its own process group, and signalling that group.

use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;
use warren_proto::v1::{TaskSpec, task_spec};

/// The variable every task's processes carry: the pid of the engine that started them.
pub const ENGINE_PID_VAR: &str = "WARREN_ENGINE_PID";

/// Builds the command for a task: argv directly, a script with `sh -c`.
pub fn command(task_id: u64, spec: &TaskSpec) -> Result<Command, String> {
    let mut command = match &spec.command {
        Some(task_spec::Command::Argv(argv)) => {
            let (program, args) = argv
                .args
                .split_first()
                .ok_or_else(|| "the task has an empty argv".to_owned())?;
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        Some(task_spec::Command::Script(script)) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(script);
            command
        }
        None => return Err("the task has no command".to_owned()),
    };
    if !spec.cwd.is_empty() {
        // Checked here because spawn's error for a bad cwd looks like a missing program.
        if !Path::new(&spec.cwd).is_dir() {
            return Err(format!(
                "working directory {} does not exist on this engine (or is not a directory)",
                spec.cwd
            ));
        }
        command.current_dir(&spec.cwd);
    }
    command
        .env(ENGINE_PID_VAR, std::process::id().to_string())
        .env("WARREN_TASK_ID", task_id.to_string())
        .envs(&spec.env)
        .stdin(if spec.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so signals reach everything it starts and nothing else.
        .process_group(0)
        .kill_on_drop(true);
    warren_proto::child::die_with_parent(command.as_std_mut());
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

/// Kills what tasks of engines that died without cleaning up (SIGKILL) left running: processes
/// of this user whose environment names an engine pid that no longer exists. The kernel kills
/// a task's first process with its engine (PR_SET_PDEATHSIG); this catches what that process
/// had started. Returns how many were killed.
pub fn kill_orphans() -> usize {
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
        if !owned || Path::new(&format!("/proc/{engine}")).exists() {
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
