//! What the engine may ask of a running task: the messages from the session (and from
//! [`crate::tasks`]) to a task's runner. Its own module so that the tasks and the runner both
//! depend on it rather than on each other.

use tokio::sync::mpsc;
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

/// Where a task's controls go: its own runner, or, for a cell, the runner of the session it
/// waits or runs in (which tells its cells apart by task id).
#[derive(Debug, Clone)]
pub enum ControlTx {
    /// A task's own runner.
    Runner(mpsc::UnboundedSender<Control>),
    /// A session's runner, for the cell with this task id.
    Cell {
        /// The cell.
        task_id: u64,
        /// The session runner's commands.
        session: mpsc::UnboundedSender<crate::sessions::Command>,
    },
}

impl ControlTx {
    /// Sends a control; an error if its runner has ended.
    pub fn send(&self, control: Control) -> Result<(), Control> {
        match self {
            Self::Runner(tx) => tx.send(control).map_err(|e| e.0),
            Self::Cell { task_id, session } => session
                .send(crate::sessions::Command::Control {
                    task_id: *task_id,
                    control,
                })
                .map_err(|e| match e.0 {
                    crate::sessions::Command::Control { control, .. } => control,
                    _ => Control::Discard,
                }),
        }
    }
}

impl From<mpsc::UnboundedSender<Control>> for ControlTx {
    fn from(tx: mpsc::UnboundedSender<Control>) -> Self {
        Self::Runner(tx)
    }
}
