//! What the engine may ask of a running task: the messages from the session (and from
//! [`crate::tasks`]) to a task's runner, and to a session's runner for its cells. Its own
//! module so that the tasks, the sessions and the runners all depend on it rather than on
//! each other.

use std::time::Duration;
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

/// A cell for a session's runner.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Its task id (also its id in the cell protocol).
    pub task_id: u64,
    /// Its task's attempt.
    pub attempt: u32,
    /// The code.
    pub code: String,
    /// Interrupt it after this long.
    pub timeout: Option<Duration>,
}

/// What a session's runner is asked (see [`crate::sessions`]).
#[derive(Debug)]
pub enum SessionCommand {
    /// Queue this cell.
    Cell(Cell),
    /// A control for one of its cells (see [`Control`]).
    Control {
        /// The cell.
        task_id: u64,
        /// What is asked.
        control: Control,
    },
    /// Close the session (SIGKILL at once with `kill`, else end of input and SIGTERM).
    Close {
        /// Why, for the cells it ends.
        reason: String,
        /// No grace: the session is being replaced.
        kill: bool,
    },
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
        session: mpsc::UnboundedSender<SessionCommand>,
    },
}

impl ControlTx {
    /// Sends a control; an error if its runner has ended.
    pub fn send(&self, control: Control) -> Result<(), Control> {
        match self {
            Self::Runner(tx) => tx.send(control).map_err(|e| e.0),
            Self::Cell { task_id, session } => session
                .send(SessionCommand::Control {
                    task_id: *task_id,
                    control,
                })
                .map_err(|e| match e.0 {
                    SessionCommand::Control { control, .. } => control,
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
