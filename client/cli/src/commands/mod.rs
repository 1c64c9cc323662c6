//! The commands that talk to a running hub.

mod hub;
mod run;
mod tasks;

pub(crate) use hub::{engines, queue, version};
pub(crate) use run::{JobFlags, job, run, shell};
pub(crate) use tasks::{abort, interrupt, purge, result, tasks};
