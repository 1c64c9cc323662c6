//! Child processes that never outlive the process that started them.

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
