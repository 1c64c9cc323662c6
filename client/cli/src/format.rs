//! How a command prints what it read: text for people, JSON for programs (`--json`, `-o json`),
//! or ids only (`-q`); and how much the CLI logs (`-v`, `-q`, `RUST_LOG`).
//!
//! The JSON is the protobuf JSON mapping of the hub's reply, as grpcurl prints it (field
//! names in lowerCamelCase, enums by name, 64-bit integers as strings, bytes in base64,
//! fields at their default left out): one document per reply ([`print_json`]), and for a
//! stream one compact line per event ([`print_json_line`]). A command that reads something
//! takes a [`Format`] and calls these; [`check`] refuses `--json` on commands that have no
//! JSON to give.

use serde::Serialize;
use std::fmt::Display;
use std::io::{self, Write};

use crate::cli::{Command, Format, SessionAction};

/// What a command can print besides text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Formats {
    /// It prints its reply as JSON.
    pub(crate) json: bool,
}

/// Which formats each command supports. A command of its own adds its variant here once it
/// prints JSON; until then `--json` on it is a usage error rather than silently ignored.
fn formats(command: &Command) -> Formats {
    let json = match command {
        Command::Exec(_)
        | Command::Sh(_)
        | Command::Attach { .. }
        | Command::Tasks(_)
        | Command::Result(_)
        | Command::Queue
        | Command::Version
        | Command::Ping
        | Command::Doctor => true,
        Command::Session { action } => matches!(action, SessionAction::Ls { .. }),
        Command::Engines { action } => action.is_none(),
        _ => false,
    };
    Formats { json }
}

/// Refuses `--json` (or `-o json`) on a command that has no JSON to print.
pub(crate) fn check(command: &Command, format: Format, name: &str) -> Result<(), clap::Error> {
    use clap::CommandFactory;
    if format == Format::Json && !formats(command).json {
        return Err(crate::cli::Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "--json: `warren {name}` prints no JSON; the commands that read something do (engines, tasks, result, queue, version, ping, doctor, session ls, exec, sh, attach)"
            ),
        ));
    }
    Ok(())
}

/// Prints one reply as one JSON document, indented as grpcurl indents it.
pub(crate) fn print_json<T: Serialize>(reply: &T) -> anyhow::Result<()> {
    // Into memory first, so that a reader gone away (`| head`) is a plain io::Error.
    let mut text = serde_json::to_vec_pretty(reply)?;
    text.push(b'\n');
    let mut out = io::stdout().lock();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
}

/// Prints one event of a stream as one compact JSON line.
pub(crate) fn print_json_line<T: Serialize>(event: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut out = io::stdout().lock();
    out.write_all(&line)?;
    out.flush()
}

/// Prints ids, one per line (`-q`).
pub(crate) fn print_ids<I>(ids: I) -> io::Result<()>
where
    I: IntoIterator,
    I::Item: Display,
{
    let mut out = io::stdout().lock();
    for id in ids {
        writeln!(out, "{id}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use warren::proto::{EngineInfo, ListEnginesReply, TaskState};

    #[test]
    fn replies_print_in_the_protobuf_json_mapping() {
        let reply = ListEnginesReply {
            engines: vec![EngineInfo {
                id: 3,
                hostname: "box".into(),
                registered_us: 1_764_531_001_123_000,
                ..EngineInfo::default()
            }],
        };
        let value = serde_json::to_value(&reply).expect("serialize");
        // 64-bit integers are strings, names are lowerCamelCase, defaults are left out.
        assert_eq!(
            value,
            serde_json::json!({"engines": [{"id": 3, "hostname": "box", "registeredUs": "1764531001123000"}]})
        );
        let state = serde_json::to_value(TaskState::TimedOut).expect("serialize");
        assert_eq!(state, serde_json::json!("TASK_STATE_TIMED_OUT"));
    }
}
