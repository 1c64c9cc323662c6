//! warren's hub: serves gRPC on a private Unix socket and nothing else.
//!
//! The hub keeps the registry of engines and its live tasks, places tasks on engines as slots
//! free up, and streams each task's events to whoever follows it. Every task, state change and
//! kept output chunk goes to a SQLite history written off the hot path; an engine's output is
//! acknowledged only once committed, so a hub killed at any moment loses nothing an engine
//! can't send again. Engines that fall silent are written off; their tasks end `lost` or run
//! again elsewhere. Every call passes the HMAC check before it reaches a service; health and
//! reflection alone answer unsigned.
//!
//! The folders are the architecture:
//! - `state/`: the hub (`Hub`), its `State` behind one lock, and every operation on it; the
//!   only code that changes tasks and engines.
//! - `service/`: the gRPC services, thin adapters from requests to hub operations, and the
//!   only place an error becomes a gRPC status.
//! - `store/`: the SQLite history; it knows the shared types of `model` and nothing else of
//!   the hub.
//! - `model`: the types the state and the store share (`Submitter`, `TaskRow`, `Progress`,
//!   `Entry`); `error`: the hub's error type.
//! - The edge: `config` (flags), `run` (start-up and the draining shutdown), `serve` (the
//!   gRPC server), `socket` (and `activation`: a socket systemd passes, readiness), `auth` and `input` (gates in front of every call, see `gate`),
//!   `validate` (checks on what callers and engines send).
//!
//! The public surface is [`run`] with its [`HubConfig`], and [`InProcessHub`] for the bench.

mod activation;
mod auth;
mod config;
mod embed;
mod error;
mod gate;
mod input;
mod model;
mod run;
mod serve;
mod service;
mod socket;
mod state;
mod store;
mod validate;

pub use activation::ActivationError;
pub use config::{ConfigError, HubConfig};
pub use embed::InProcessHub;
pub use run::{RunError, run};
pub use socket::SocketError;
pub use store::StoreError;
