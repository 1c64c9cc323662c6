//! The arguments of the commands that read or change tasks already submitted: `tasks`,
//! `result`, `wait`, `purge`, and `cp`, which copies files to and from engines.

use clap::Args;
use warren::proto::TaskState;

use super::parse::{parse_label, parse_state};

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Only tasks in this state (waiting, queued, running, succeeded, failed, aborted, timed-out, lost; repeatable)
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub(crate) states: Vec<TaskState>,
    /// Only tasks on this engine
    #[arg(long, value_name = "ID")]
    pub(crate) engine: Option<u32>,
    /// Only tasks with this label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Only tasks submitted within this long (e.g. 90s, 30m, 12h, 7d)
    #[arg(long, value_name = "AGE", value_parser = warren_proto::os::units::parse_age)]
    pub(crate) since: Option<std::time::Duration>,
    /// At most this many
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// Continue a listing where an earlier page ended
    #[arg(long, value_name = "TOKEN")]
    pub(crate) page_token: Option<String>,
}

/// Tasks named by id, or those with labels.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Selection {
    /// Task ids
    #[arg(value_name = "TASK")]
    pub(crate) tasks: Vec<u64>,
    /// Instead of ids: the tasks with this label (repeatable: all of them)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    #[command(flatten)]
    pub(crate) select: Selection,
}

#[derive(Debug, Args)]
pub(crate) struct ResultArgs {
    #[command(flatten)]
    pub(crate) select: Selection,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PurgeArgs {
    /// Tasks that finished longer ago than this (e.g. 7d)
    #[arg(long, value_name = "AGE", value_parser = warren_proto::os::units::parse_age)]
    pub(crate) older_than: Option<std::time::Duration>,
    /// Every finished task
    #[arg(long)]
    pub(crate) all: bool,
    /// These tasks (each must be finished)
    pub(crate) tasks: Vec<u64>,
}

/// The arguments of `warren cp`.
#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// Copy directories and everything in them
    #[arg(short = 'r', long)]
    pub(crate) recursive: bool,

    /// The sources, then the destination: local paths, ID:PATH on engine ID, or --all:PATH on
    /// every engine (a destination only)
    #[arg(required = true, num_args = 2.., value_name = "PATH", allow_hyphen_values = true)]
    pub(crate) paths: Vec<String>,
}
