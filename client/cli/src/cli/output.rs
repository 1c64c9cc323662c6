//! The output and logging flags every command takes (`--json`, `-o`, `-q`, `-v`); what a
//! command prints with them is `crate::format`'s.

use clap::{Args, ValueEnum};

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
