//! The arguments of `warren session` (open, ls, close, restart) and `warren px`.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{parse_env, parse_label, parse_timeout};

#[derive(Debug, Subcommand)]
pub(crate) enum SessionAction {
    /// Open a session (an interpreter) on each selected engine, as one group; prints its ids
    Open(OpenArgs),
    /// List the sessions that are not closed
    Ls {
        /// Only this group's
        #[arg(long, value_name = "GROUP")]
        name: Option<String>,
        /// Closed ones too
        #[arg(long)]
        all: bool,
    },
    /// Close sessions: their interpreters end, cells still queued end aborted
    Close {
        /// Session ids or group names
        #[arg(required = true, value_name = "GROUP|ID")]
        targets: Vec<String>,
    },
    /// Start a fresh interpreter under the same session id (the old one's state is gone)
    Restart {
        /// Session ids or group names
        #[arg(required = true, value_name = "GROUP|ID")]
        targets: Vec<String>,
    },
}

/// The interpreter a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Interpreter {
    /// warren's Python driver, with the engine's python3 (or the ARGV given)
    Python,
    /// warren's bash driver (or the shell given as ARGV)
    Bash,
    /// ARGV: a program that speaks warren's cell protocol (docs/cell-protocol.md)
    Custom,
}

#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    /// One session on every engine
    #[arg(long, short = 'a', group = "where_to")]
    pub(crate) all: bool,
    /// One session on each named engine (repeatable)
    #[arg(long = "engine", short = 'e', value_name = "ID", group = "where_to")]
    pub(crate) engines: Vec<u32>,
    /// One session, on the engine with the fewest (the default)
    #[arg(long, group = "where_to")]
    pub(crate) any: bool,
    /// Only on engines with this label (with --all or --any; repeatable)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_label,
          conflicts_with = "engines")]
    pub(crate) engine_labels: Vec<(String, String)>,
    /// The interpreter
    #[arg(long, value_enum, default_value_t = Interpreter::Python)]
    pub(crate) kind: Interpreter,
    /// The group's name, for `warren px --name` [default: group-<first id>]
    #[arg(long, value_name = "GROUP")]
    pub(crate) name: Option<String>,
    /// Set an environment variable for the interpreter (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Start the interpreter in this directory on the engine
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// The interpreter's command: python3 or bash and their options, or a custom adapter
    #[arg(last = true, value_name = "ARGV")]
    pub(crate) argv: Vec<String>,
}

/// The arguments of `warren px`.
#[derive(Debug, Args)]
pub(crate) struct PxArgs {
    /// Run in every session of this group [default: the only group with open sessions]
    #[arg(long, value_name = "GROUP", conflicts_with = "sessions")]
    pub(crate) name: Option<String>,
    /// Run in this session (repeatable)
    #[arg(long = "session", short = 's', value_name = "ID")]
    pub(crate) sessions: Vec<u64>,
    /// An interactive prompt: each entry is a cell in every session (a line ending with `:`
    /// opens a block, ended by an empty line; Ctrl-D leaves)
    #[arg(long, short = 'i', conflicts_with_all = ["code", "file"])]
    pub(crate) interactive: bool,
    /// Send this file as one cell (`-` for stdin)
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "code")]
    pub(crate) file: Option<PathBuf>,
    /// Interrupt a cell still running after this many seconds (its session is killed if it
    /// does not stop)
    #[arg(long, short = 't', value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// The cell's code [default: stdin, as one cell]
    pub(crate) code: Option<String>,
}
