//! `--joblog FILE`: one line per task as it ends, in GNU parallel's joblog columns.
//!
//! ```text
//! Seq  Host  Starttime       JobRuntime  Send  Receive  Exitval  Signal  Command
//! 17   2     1733000000.123       0.004  0     12       0        0       echo a
//! ```
//!
//! Seq is the task's id (ids follow the input's order), Host the engine it ran on (`-` if it
//! never started), Starttime the start in seconds since the epoch, JobRuntime the seconds it
//! ran, Send the stdin bytes it was given, Receive the output bytes it wrote, Exitval its exit
//! status (-1 if it did not exit on its own: aborted, lost, never started), Signal the signal
//! that killed it (0 if none), Command the command line, quoted as a shell would read it.

use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use warren::{Exit, Outcome};

use crate::cli::shell_word;

/// The header line, as GNU parallel writes it.
pub(crate) const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// The open joblog.
pub(crate) struct JobLog {
    file: BufWriter<File>,
}

/// What one line says of one task.
pub(crate) struct Line<'a> {
    /// The task.
    pub(crate) task: u64,
    /// The engine it ran on; 0 if none.
    pub(crate) engine: u32,
    /// How it ended.
    pub(crate) outcome: &'a Outcome,
    /// Stdin bytes it was given.
    pub(crate) sent: u64,
    /// Output bytes it wrote.
    pub(crate) received: u64,
    /// The command.
    pub(crate) command: &'a [String],
}

impl JobLog {
    /// Creates (or empties) the joblog and writes its header.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create --joblog {}", path.display()))?;
        let mut log = Self {
            file: BufWriter::new(file),
        };
        writeln!(log.file, "{HEADER}")?;
        log.file.flush()?;
        Ok(log)
    }

    /// Writes one task's line, at once (a reader of the log sees each task as it ends).
    pub(crate) fn write(&mut self, line: &Line<'_>) -> std::io::Result<()> {
        writeln!(self.file, "{}", format_line(line))?;
        self.file.flush()
    }
}

/// One line, without its newline.
pub(crate) fn format_line(line: &Line<'_>) -> String {
    let outcome = line.outcome;
    let started = outcome.started_us > 0;
    let start_us = if started {
        outcome.started_us
    } else {
        outcome.finished_us
    };
    let runtime_us = if started {
        (outcome.finished_us - outcome.started_us).max(0)
    } else {
        0
    };
    let (exitval, signal) = match outcome.exit {
        Some(Exit::Code(code)) => (code, 0),
        Some(Exit::Signal(signal)) => (-1, signal),
        None => (-1, 0),
    };
    let host = if line.engine == 0 {
        "-".to_owned()
    } else {
        line.engine.to_string()
    };
    let command: Vec<String> = line.command.iter().map(|w| shell_word(w)).collect();
    format!(
        "{}\t{host}\t{}\t{:>10}\t{}\t{}\t{exitval}\t{signal}\t{}",
        line.task,
        seconds(start_us),
        seconds(runtime_us),
        line.sent,
        line.received,
        command.join(" ")
    )
}

/// Microseconds as seconds with three decimals.
fn seconds(us: i64) -> String {
    format!("{}.{:03}", us / 1_000_000, (us % 1_000_000) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren::proto::{TaskResult, TaskState, task_result};

    #[test]
    fn a_line_has_parallels_nine_columns() {
        let outcome = Outcome::from(TaskResult {
            state: TaskState::Failed as i32,
            exit: Some(task_result::Exit::ExitCode(3)),
            started_us: 1_733_000_000_123_456,
            finished_us: 1_733_000_001_127_000,
            ..Default::default()
        });
        let command = ["sh".to_owned(), "-c".into(), "exit 3".into()];
        let text = format_line(&Line {
            task: 17,
            engine: 2,
            outcome: &outcome,
            sent: 0,
            received: 12,
            command: &command,
        });
        assert_eq!(
            text,
            "17\t2\t1733000000.123\t     1.003\t0\t12\t3\t0\tsh -c 'exit 3'"
        );
        assert_eq!(text.split('\t').count(), HEADER.split('\t').count());

        let aborted = Outcome::new(TaskState::Aborted, "no");
        let text = format_line(&Line {
            task: 18,
            engine: 0,
            outcome: &aborted,
            sent: 0,
            received: 0,
            command: &command,
        });
        assert!(
            text.starts_with("18\t-\t0.000\t     0.000\t0\t0\t-1\t0\t"),
            "{text}"
        );
    }
}
