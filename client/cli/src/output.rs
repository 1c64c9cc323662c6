//! Printing task events as they arrive: raw for one task, prefixed by engine for several, or
//! (`--json`) each event as a line of JSON.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use warren::proto::{self, TaskState};
use warren::{Event, EventKind, Exit, Outcome, OutputStream};

/// Writes task output to stdout and stderr and keeps each task's result.
pub(crate) struct Printer {
    /// Prefix each line with its engine (several tasks), or pass bytes through (one task).
    prefixed: bool,
    /// Bytes after the last newline, per task and stream, waiting for the rest of the line.
    partial: HashMap<(u64, OutputStream), Vec<u8>>,
    engines: HashMap<u64, u32>,
    /// Per task: the attempt last seen running, its engine, and why it was given up, if it was.
    attempts: HashMap<u64, Attempt>,
    results: BTreeMap<u64, Outcome>,
    /// Whether the last byte written to stderr ended a line (so a note starts on its own).
    stderr_at_line_start: bool,
    /// Show only the stdin tasks were given (`attach --input`), instead of their output.
    input_only: bool,
    /// Print each event as a JSON line (`--json`) instead of the output it carries.
    json: bool,
}

/// The attempt of a task the printer last saw running.
#[derive(Debug, Default)]
struct Attempt {
    number: u32,
    engine: u32,
    /// Why it was given up (the reason of the state change back to queued).
    lost: Option<String>,
}

impl Printer {
    /// A printer for `tasks` tasks.
    pub(crate) fn new(tasks: usize) -> Self {
        Self {
            prefixed: tasks > 1,
            partial: HashMap::new(),
            engines: HashMap::new(),
            attempts: HashMap::new(),
            results: BTreeMap::new(),
            stderr_at_line_start: true,
            input_only: false,
            json: false,
        }
    }

    /// A printer that prints every event as one line of JSON (the wire `TaskEvent` in the
    /// protobuf JSON mapping) and nothing else on stdout.
    pub(crate) fn json() -> Self {
        Self {
            json: true,
            ..Self::new(1)
        }
    }

    /// Shows the recorded stdin of the tasks (as given, on stdout) instead of their output.
    pub(crate) fn input_only(mut self) -> Self {
        self.input_only = true;
        self
    }

    /// Writes `[warren] TEXT` on stderr, on a line of its own.
    pub(crate) fn note(&mut self, text: &str) {
        let end = crate::terminal::newline();
        let start = if self.stderr_at_line_start { "" } else { end };
        eprint!("{start}[warren] {text}{end}");
        self.stderr_at_line_start = true;
    }

    /// Keeps a task's end known from elsewhere (its record), without showing anything.
    pub(crate) fn record(&mut self, task_id: u64, result: Outcome) {
        self.results.insert(task_id, result);
    }

    /// Notes a task moving to a new attempt: `attempt 1 lost on engine 2 (...); attempt 2
    /// on engine 1`.
    fn state_change(
        &mut self,
        task_id: u64,
        engine_id: u32,
        state: TaskState,
        reason: &str,
        attempt: u32,
    ) {
        let seen = self.attempts.entry(task_id).or_default();
        match state {
            TaskState::Queued if seen.number > 0 && attempt == seen.number => {
                seen.lost = Some(lost_reason(reason, seen.engine));
            }
            TaskState::Running if attempt > seen.number => {
                let before = std::mem::replace(
                    seen,
                    Attempt {
                        number: attempt,
                        engine: engine_id,
                        lost: None,
                    },
                );
                if before.number > 0 {
                    let why = before
                        .lost
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default();
                    let on = if before.engine == 0 {
                        String::new()
                    } else {
                        format!(" on engine {}", before.engine)
                    };
                    self.note(&format!(
                        "task {task_id} attempt {} lost{on}{why}; attempt {attempt} on engine {engine_id}",
                        before.number
                    ));
                }
            }
            _ => {}
        }
    }

    /// Shows one event.
    pub(crate) fn event(&mut self, event: Event) -> io::Result<()> {
        if event.engine_id != 0 {
            self.engines.insert(event.task_id, event.engine_id);
        }
        if self.json {
            crate::format::print_json_line(&wire_event(&event))?;
            if let EventKind::Result(result) = event.kind {
                self.results.insert(event.task_id, result);
            }
            return Ok(());
        }
        match event.kind {
            EventKind::Output {
                stream: OutputStream::Stdin,
                data,
            } => {
                if self.input_only {
                    write_to(false, &data)
                } else {
                    Ok(())
                }
            }
            EventKind::Output { .. } if self.input_only => Ok(()),
            EventKind::Output { stream, data } => {
                self.output(event.task_id, event.engine_id, stream, &data)
            }
            EventKind::Result(result) => {
                self.flush_task(event.task_id)?;
                self.report(event.task_id, &result);
                self.results.insert(event.task_id, result);
                Ok(())
            }
            EventKind::Gap {
                first_seq,
                last_seq,
                bytes,
            } => {
                eprintln!(
                    "warren: task {}: {bytes} bytes of output (events {first_seq} to {last_seq}) were past the hub's output cap and are not shown",
                    event.task_id
                );
                Ok(())
            }
            EventKind::State {
                state,
                reason,
                attempt,
            } => {
                self.state_change(event.task_id, event.engine_id, state, &reason, attempt);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn output(
        &mut self,
        task_id: u64,
        engine_id: u32,
        stream: OutputStream,
        data: &[u8],
    ) -> io::Result<()> {
        let is_stderr = stream == OutputStream::Stderr;
        if !self.prefixed {
            if is_stderr && let Some(&last) = data.last() {
                self.stderr_at_line_start = last == b'\n';
            }
            return write_to(is_stderr, data);
        }
        let pending = self.partial.entry((task_id, stream)).or_default();
        let Some(complete) = whole_lines(pending, data) else {
            return Ok(());
        };
        let prefix = format!("[engine {engine_id}] ");
        write_to(is_stderr, &prefix_lines(&prefix, &complete))
    }

    /// Writes out what is left of a task's last lines.
    fn flush_task(&mut self, task_id: u64) -> io::Result<()> {
        let engine_id = self.engines.get(&task_id).copied().unwrap_or(0);
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            if let Some(rest) = self.partial.remove(&(task_id, stream))
                && !rest.is_empty()
            {
                let mut text = format!("[engine {engine_id}] ").into_bytes();
                text.extend_from_slice(&rest);
                text.push(b'\n');
                write_to(stream == OutputStream::Stderr, &text)?;
            }
        }
        Ok(())
    }

    /// Says why a task did not succeed, unless it simply exited non-zero on its own (a
    /// program that could not start, 126 or 127, did not exit on its own: that is said).
    fn report(&mut self, task_id: u64, result: &Outcome) {
        let state = result.state;
        let plain_exit = state == TaskState::Failed
            && result.started_us > 0
            && matches!(result.exit, Some(Exit::Code(_)));
        if state == TaskState::Succeeded || (plain_exit && !self.prefixed) {
            return;
        }
        let engine = match self.engines.get(&task_id) {
            Some(id) => format!(" on engine {id}"),
            None => String::new(),
        };
        let why = if result.error.is_empty() {
            String::new()
        } else {
            format!(": {}", result.error)
        };
        let end = crate::terminal::newline();
        let start = if self.stderr_at_line_start { "" } else { end };
        eprint!(
            "{start}warren: task {task_id}{engine} {}{why}{end}",
            state.label()
        );
        self.stderr_at_line_start = true;
    }

    /// The exit status for the results seen: one task's own status, or for several, 0 if
    /// every one succeeded and 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.results.len() {
            0 => 1,
            1 => self.results.values().next().map_or(1, exit_code_of),
            _ => u8::from(!self.results.values().all(Outcome::succeeded)),
        }
    }
}

/// What a task's lost attempt died of, from the reason the hub gave for queueing it again
/// ("engine 2 (host pid 7) lost its connection while the task was running; retrying
/// elsewhere (retry 1 of 2)"): the middle part, as the engine is named apart.
fn lost_reason(reason: &str, engine: u32) -> String {
    let first = reason.split("; ").next().unwrap_or(reason);
    let named = format!("engine {engine} (");
    match first
        .strip_prefix(&named)
        .and_then(|rest| rest.split_once(") "))
    {
        Some((_, why)) => why.to_owned(),
        None => first.to_owned(),
    }
}

/// An event as the hub sent it.
fn wire_event(event: &Event) -> proto::TaskEvent {
    use proto::task_event::Kind;
    let kind = match &event.kind {
        EventKind::Output { stream, data } => Some(Kind::Output(proto::OutputChunk {
            stream: match stream {
                OutputStream::Stdout => proto::OutputStream::Stdout,
                OutputStream::Stderr => proto::OutputStream::Stderr,
                OutputStream::Stdin => proto::OutputStream::Stdin,
            } as i32,
            data: data.clone(),
        })),
        EventKind::State {
            state,
            reason,
            attempt,
        } => Some(Kind::State(proto::StateChange {
            state: *state as i32,
            reason: reason.clone(),
            attempt: *attempt,
        })),
        EventKind::Result(outcome) => Some(Kind::Result(proto::TaskResult {
            state: outcome.state as i32,
            exit: outcome.exit.map(|exit| match exit {
                Exit::Code(code) => proto::task_result::Exit::ExitCode(code),
                Exit::Signal(signal) => proto::task_result::Exit::Signal(signal),
            }),
            error: outcome.error.clone(),
            started_us: outcome.started_us,
            finished_us: outcome.finished_us,
            attempt: outcome.attempt,
            value_repr: outcome.value_repr.clone(),
            cell_error: outcome.cell_error.as_ref().map(|e| proto::CellError {
                name: e.name.clone(),
                value: e.value.clone(),
                traceback: e.traceback.clone(),
            }),
        })),
        EventKind::Gap {
            first_seq,
            last_seq,
            bytes,
        } => Some(Kind::Gap(proto::OutputGap {
            first_seq: *first_seq,
            last_seq: *last_seq,
            bytes: *bytes,
        })),
        // A kind this CLI does not know yet: its place in the stream still shows.
        _ => None,
    };
    proto::TaskEvent {
        task_id: event.task_id,
        engine_id: event.engine_id,
        seq: event.seq,
        time_us: event.time_us,
        kind,
    }
}

/// A task's result as a process exit status, the way a shell would report it.
pub(crate) fn exit_code_of(result: &Outcome) -> u8 {
    match (result.state, result.exit) {
        (TaskState::Succeeded, _) => 0,
        // As timeout(1) does.
        (TaskState::TimedOut, _) => 124,
        (_, Some(Exit::Code(code))) if code != 0 => code.clamp(1, 255) as u8,
        (_, Some(Exit::Signal(signal))) => (128 + signal).clamp(129, 255) as u8,
        _ => 1,
    }
}

/// Appends `data` to what `pending` holds of a stream's last line and takes out the whole
/// lines, if there are any now; the rest of a line stays in `pending`.
pub(crate) fn whole_lines(pending: &mut Vec<u8>, data: &[u8]) -> Option<Vec<u8>> {
    pending.extend_from_slice(data);
    let last_newline = pending.iter().rposition(|&b| b == b'\n')?;
    let rest = pending.split_off(last_newline + 1);
    Some(std::mem::replace(pending, rest))
}

/// `text` with `prefix` before each of its lines.
pub(crate) fn prefix_lines(prefix: &str, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    for line in text.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

/// Writes `bytes` to stderr or stdout at once.
pub(crate) fn write_to(stderr: bool, bytes: &[u8]) -> io::Result<()> {
    if stderr {
        // Stderr has no buffer to skip.
        let mut err = io::stderr().lock();
        err.write_all(bytes)?;
        err.flush()
    } else {
        // Past std's line buffer, which searches every byte of output for its last newline:
        // an eighth of the CLI's CPU on a bulk stream. The lock keeps other threads' prints
        // from landing inside these bytes, and what they left buffered goes out first.
        let mut out = io::stdout().lock();
        out.flush()?;
        write_all_fd(rustix::stdio::stdout(), bytes)
    }
}

/// `write_all` on a file descriptor, without a buffer.
fn write_all_fd(fd: rustix::fd::BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_come_out_prefixed_and_the_rest_waits() {
        let mut pending = Vec::new();
        assert_eq!(whole_lines(&mut pending, b"a"), None);
        let lines = whole_lines(&mut pending, b"b\nc\nd").expect("two whole lines");
        assert_eq!(lines, b"ab\nc\n");
        assert_eq!(pending, b"d");
        assert_eq!(
            prefix_lines("[engine 2] ", &lines),
            b"[engine 2] ab\n[engine 2] c\n"
        );
    }
}
