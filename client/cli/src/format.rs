//! How a command prints what it read: text for people, JSON for programs (`--json`, `-o json`),
//! or ids only (`-q`); and how much the CLI logs (`-v`, `-q`, `RUST_LOG`).
//!
//! The JSON is the protobuf JSON mapping of the hub's reply, as grpcurl prints it (field
//! names in lowerCamelCase, enums by name, 64-bit integers as strings, bytes in base64,
//! fields at their default left out): one document per reply ([`print_json`]), and for a
//! stream one compact line per event ([`print_json_line`]). A command that reads something
//! takes a [`Format`] and calls these; [`check`] refuses `--json` on commands that have no
//! JSON to give.

use clap::{Args, ValueEnum};
use serde::Serialize;
use std::fmt::Display;
use std::io::{self, Write};

use crate::cli::Command;

/// The output and logging flags, shared by every command.
#[derive(Debug, Default, Args)]
pub(crate) struct OutputArgs {
    /// Print the hub's reply as JSON (its protobuf JSON mapping, as grpcurl prints it); a
    /// stream (exec, sh, attach) prints one JSON object per event and line
    #[arg(long, global = true, conflicts_with = "output")]
    json: bool,

    /// The output format: text (for people) or json (same as --json)
    #[arg(long, short = 'o', global = true, value_name = "FORMAT")]
    output: Option<Format>,

    /// Print only ids (tasks, engines), or nothing where a command has no ids (its exit
    /// status tells); log only errors
    #[arg(long, short = 'q', global = true, conflicts_with_all = ["json", "output", "verbose"])]
    quiet: bool,

    /// Log more: -v what the CLI does, -vv in detail, -vvv everything (without -v or -q,
    /// RUST_LOG's filter, else warnings only)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// How a command prints what it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Tables and words, for people.
    #[default]
    Text,
    /// The reply in the protobuf JSON mapping.
    Json,
    /// Ids only, one per line (`-q`; not a value of `-o`).
    #[value(skip)]
    Quiet,
}

impl OutputArgs {
    /// The format the flags ask for.
    pub(crate) fn format(&self) -> Format {
        if self.quiet {
            Format::Quiet
        } else if self.json {
            Format::Json
        } else {
            self.output.unwrap_or_default()
        }
    }

    /// The log filter: from `-v`/`-q` when given, else `RUST_LOG`'s, else warnings only.
    pub(crate) fn log_filter(&self) -> String {
        // The binary's own target is `warren`, as is the SDK's.
        const OURS: [&str; 2] = ["warren", "warren_proto"];
        let ours = |level: &str| {
            OURS.iter()
                .map(|krate| format!("{krate}={level}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match (self.quiet, self.verbose) {
            (true, _) => "error".to_owned(),
            (false, 0) => std::env::var("RUST_LOG")
                .ok()
                .filter(|filter| !filter.trim().is_empty())
                .unwrap_or_else(|| "warn".to_owned()),
            (false, 1) => format!("warn,{}", ours("info")),
            (false, 2) => format!("warn,{}", ours("debug")),
            (false, _) => format!("debug,{}", ours("trace")),
        }
    }
}

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
        Command::Session { action } => matches!(action, crate::session::SessionAction::Ls { .. }),
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
