//! The warren SDK: call a warren hub from Rust.
//!
//! A [`Client`] talks gRPC to the hub's Unix socket (directly, or through an `ssh -L`
//! forward) and signs every call with the hub's key, found in its connection file. It has a
//! typed method for every RPC and [`Client::run`], which submits a [`Job`] and streams back
//! every [`Event`] of its tasks: when each starts, its stdout and stderr as they are written,
//! and how it ended. [`ClientBuilder`] says where the hub is and how long to wait.
//! [`Client::upload`] and [`Client::download`] copy files to and from engines.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use warren::{ClientBuilder, EventKind, Job};
//!
//! # async fn demo() -> Result<(), warren::Error> {
//! let client = ClientBuilder::from_env().connect().await?;
//! let mut events = client.run(Job::argv(["uname", "-a"]).all()).await?;
//! while let Some(event) = events.try_next().await? {
//!     match event.kind {
//!         EventKind::Output { data, .. } => {
//!             print!("[engine {}] {}", event.engine_id, String::from_utf8_lossy(&data))
//!         }
//!         EventKind::Result(outcome) => {
//!             println!("task {} ended {}", event.task_id, outcome.state.label())
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `examples/run.rs` is the same program, runnable: `cargo run -p warren --example run`.
//!
//! The SDK builds no command-line or OS helpers: the `warren` command is the `warren-cli`
//! package, built on this crate.

mod batch;
mod builder;
mod cell;
mod client;
mod diagnose;
mod error;
mod events;
mod files;
mod interact;
mod job;
mod placement;
mod session;

pub use batch::MAX_BATCH;
pub use builder::{ClientBuilder, DEFAULT_TIMEOUT};
pub use cell::{Cell, CellEvent, CellResult};
pub use client::{Client, TaskPage};
pub use error::{Error, Result};
pub use events::{CellError, Event, EventKind, Events, Exit, Outcome, OutputStream, RawEvents};
pub use files::{CopyOptions, CopyTo, Progress};
pub use interact::Stdin;
pub use job::Job;
pub use session::{Session, SessionOptions};
pub use tonic;
pub use warren_files::CopyError;
/// The generated messages and clients of `warren.v1`.
pub use warren_proto::v1 as proto;

use std::path::Path;
use warren_proto::transport::connect_unix;

/// Asks the hub on `socket` whether it is serving, without a key (gRPC health checking, which
/// the hub answers unsigned).
///
/// ```no_run
/// # async fn f() {
/// let up = warren::ping(std::path::Path::new("/tmp/warren-1000/hub.sock")).await.is_ok();
/// # }
/// ```
pub async fn ping(socket: &Path) -> Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let no_hub = |reason: String| Error::NoHub {
        socket: socket.to_owned(),
        reason,
    };
    let channel = connect_unix(socket).await.map_err(|err| {
        no_hub(std::error::Error::source(&err).map_or_else(|| err.to_string(), ToString::to_string))
    })?;
    let request = HealthCheckRequest {
        service: "warren.v1.Control".into(),
    };
    let reply = tokio::time::timeout(DEFAULT_TIMEOUT, HealthClient::new(channel).check(request))
        .await
        .map_err(|_| no_hub(format!("it did not answer within {DEFAULT_TIMEOUT:?}")))?
        .map_err(|status| no_hub(status.message().to_owned()))?;
    match reply.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(no_hub(format!("it says {other:?}"))),
    }
}
