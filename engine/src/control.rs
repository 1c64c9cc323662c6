//! What the engine may ask of a running task: the messages from the session (and from
//! [`crate::tasks`]) to a task's runner. Its own module so that the tasks and the runner both
//! depend on it rather than on each other.

use warren_proto::v1::{StdinData, WindowSize};

/// What the engine may ask of a running task.
#[derive(Debug, Clone)]
pub enum Control {
    /// Send this signal to the task's process group.
    Signal(i32),
    /// Abort it: SIGTERM, then SIGKILL after the grace period; it ends ABORTED.
    Cancel,
    /// The engine is stopping: the same, with this reason.
    Stop(String),
    /// The hub has written this attempt off: kill it and report nothing.
    Discard,
    /// The next bytes of its streamed stdin, or their end.
    Stdin(StdinData),
    /// Its terminal has a new size.
    Resize(WindowSize),
    /// Nobody can stream the rest of its stdin (the hub restarted): cut it, and hang the task
    /// up (SIGHUP), saying why.
    CutStdin(String),
}
