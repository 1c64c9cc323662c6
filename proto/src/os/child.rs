//! Child processes: ones that never outlive the process that started them, and ones whose
//! stdin is their controlling terminal.

use std::os::unix::process::CommandExt as _;

/// Asks the kernel to SIGKILL the child when this process dies, however it dies
/// (`PR_SET_PDEATHSIG`), so that a killed engine or `warren cluster` leaves nothing behind.
#[allow(unsafe_code)]
pub fn die_with_parent(command: &mut std::process::Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec and makes only two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The parent may have died before prctl took effect.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other(
                    "the parent exited while starting the child",
                ));
            }
            Ok(())
        });
    }
}

/// Has the child start a new session (so that its process group is its own) and take its
/// stdin, a terminal, as its controlling terminal.
#[allow(unsafe_code)]
pub fn controlling_terminal(command: &mut std::process::Command) {
    // SAFETY: the hook runs in the child between fork and exec. It makes two system calls,
    // setsid and ioctl(TIOCSCTTY) on fd 0, both async-signal-safe, and allocates nothing
    // (rustix's errors are plain integers).
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
}
