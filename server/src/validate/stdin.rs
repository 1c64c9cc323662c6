//! Checks on a task's streamed stdin and its terminal (`Execution.Interact`, `warren exec -t`).

use warren_proto::v1::TaskSpec;

use crate::error::HubError;

/// The longest side of a terminal, in rows or columns (the kernel keeps them in 16 bits).
pub(crate) const MAX_TTY_SIDE: u32 = u16::MAX as u32;
/// The longest TERM value.
const MAX_TERM: usize = 64;

/// Checks the streamed-stdin and terminal parts of a spec.
pub(crate) fn streamed(spec: &TaskSpec) -> Result<(), HubError> {
    if spec.stream_stdin && !spec.stdin.is_empty() {
        return Err(HubError::invalid(
            "give stdin whole (spec.stdin) or streamed (Execution.Interact), not both",
        ));
    }
    let Some(tty) = &spec.tty else {
        return Ok(());
    };
    if !spec.stream_stdin {
        return Err(HubError::invalid(
            "a terminal (spec.tty) needs someone at it: run the task with Execution.Interact (`warren exec -t`), not detached",
        ));
    }
    if tty.rows > MAX_TTY_SIDE || tty.cols > MAX_TTY_SIDE {
        return Err(HubError::invalid(format!(
            "a terminal of {} rows and {} columns is too large; at most {MAX_TTY_SIDE} each",
            tty.rows, tty.cols
        )));
    }
    let printable = tty.term.bytes().all(|b| b.is_ascii_graphic());
    if tty.term.len() > MAX_TERM || !printable {
        return Err(HubError::invalid(format!(
            "spec.tty.term must be at most {MAX_TERM} printable characters, like xterm-256color"
        )));
    }
    Ok(())
}
