//! warren's hub: serves gRPC on a private Unix socket and nothing else.
//!
//! The hub keeps the registry of engines ([`registry`]) and its live tasks ([`tasks`],
//! [`tasklog`]), places tasks on engines as slots free up ([`scheduler`]), and streams each
//! task's events to whoever follows it ([`follow`]). Every task, state change and kept output
//! chunk goes to a SQLite history ([`store`]) written off the hot path; an engine's output is
//! acknowledged only once committed, so a hub killed at any moment loses nothing an engine
//! can't send again. Engines that fall silent are written off; their tasks end `lost` or run
//! again elsewhere. Every call passes the HMAC check in [`auth`] before it reaches a service;
//! health and reflection alone answer unsigned.
//!
//! Start-up ([`run`]): open and check the history, bind the socket inside a private directory
//! ([`socket`]), write the connection file beside it, carry on the unfinished tasks, serve
//! until SIGINT, SIGTERM or `Control.Shutdown`, then tell the engines, end the follow streams,
//! and remove the socket and the connection file.

pub mod auth;
pub mod config;
pub mod input;
pub mod service;
pub mod socket;
pub mod state;
pub mod store;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Server;
use warren_proto::auth::{self as hmac_auth, Key, KeyError, Verifier};
use warren_proto::connection::{self, ConnectionError, ConnectionInfo};
use warren_proto::transport;
use warren_proto::v1::{
    control_server::ControlServer, execution_server::ExecutionServer,
    registration_server::RegistrationServer,
};

use crate::config::HubConfig;
use crate::socket::SocketError;
use crate::state::tasklog::LogLimits;
use crate::state::{Hub, Limits, Settings, StopRequest};
use crate::store::{Location, Store};

/// The largest message the hub decodes; its own checks (`validate`) refuse anything over
/// their limits with RESOURCE_EXHAUSTED well before this.
const MAX_MESSAGE: usize = 2 * validate::MAX_REQUEST;

/// How long connections get to finish after the hub has stopped its work.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the hub could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The socket or its directory was refused or failed.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The key could not be read or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The connection file could not be written.
    #[error("connection file: {0}")]
    Connection(#[from] ConnectionError),
    /// gRPC serving failed.
    #[error("serving failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Reflection could not be set up.
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// No hub serves on the socket asked about.
    #[error(
        "no hub is running on {0} (it has no connection file); start one with `warren cluster start` or `warren-hub`"
    )]
    NotRunning(PathBuf),
    /// The connection file asked for can't be used.
    #[error(transparent)]
    Locate(#[from] connection::LocateError),
    /// The task history can't be used.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Removes the socket and the connection file when the hub ends, however it ends.
struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs the hub until it is told to stop.
pub async fn run(config: HubConfig) -> Result<(), HubError> {
    if let Some(path) = &config.new_key_file {
        Key::generate()?.save(path)?;
        println!("wrote a new key to {}", path.display());
        return Ok(());
    }
    let socket_path = socket::absolute(
        &config
            .socket
            .clone()
            .unwrap_or_else(connection::default_socket),
    )?;
    if config.print_connection {
        return print_connection(config.socket.as_deref());
    }
    let (key, hub_id) = key_and_id(&config)?;
    // Refuse an unusable socket before touching the history.
    socket::check(&socket_path)?;
    let location = match &config.db {
        Some(text) => Location::parse(text),
        None => Location::default_for(
            &socket_path,
            config.socket.is_none() || socket_path == connection::default_socket(),
        )?,
    };
    // Checked before the socket exists, so a hub with a bad history never looks alive.
    let (store, recovered, commits) = Store::open(location)?;
    let database = store.location().to_string();

    let listener = socket::bind(&socket_path)?;
    let connection_file = connection::connection_file_for(&socket_path);
    let _cleanup = Cleanup {
        paths: vec![socket_path.clone(), connection_file.clone()],
    };
    ConnectionInfo::new(
        socket_path.clone(),
        hub_id.clone(),
        &key,
        std::process::id(),
    )
    .save(&connection_file)?;

    let hub = Hub::new(settings(&config, hub_id.clone()), store, recovered);
    let verifier = Arc::new(Verifier::new(
        &key,
        &hub_id,
        config.skew(),
        config.replay_capacity,
    ));
    tracing::info!(
        socket = %socket_path.display(),
        connection_file = %connection_file.display(),
        hub_id,
        database,
        "hub serving"
    );

    let background = [
        tokio::spawn(state::commits::run(hub.clone(), commits)),
        tokio::spawn(state::liveness::run(hub.clone())),
        tokio::spawn(retention(
            hub.clone(),
            config.retain_age,
            config.retain_size,
        )),
    ];
    let uid = rustix::process::geteuid().as_raw();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        hub.clone(),
        verifier,
        socket::incoming(listener, uid),
        async move {
            let _ = stopped_rx.await;
        },
    )?);

    let request = wait_for_stop(&hub).await?;
    tracing::info!(?request, "hub stopping");
    let grace = Duration::from_secs(10);
    hub.wind_down(request == StopRequest::HubAndEngines, grace)
        .await;
    hub.stop();
    for task in background {
        task.abort();
    }
    let _ = stopped_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join_error)) => tracing::error!(%join_error, "server task failed"),
        Err(_) => tracing::warn!("connections did not close within 5 s; stopping anyway"),
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// Prints the connection file of the hub on `socket` (or the default socket), found by the
/// rule every warren program shares (`Locator`), after the private-file checks.
fn print_connection(socket: Option<&Path>) -> Result<(), HubError> {
    let locator = connection::Locator {
        socket: socket.map(Path::to_owned),
        ..connection::Locator::default()
    }
    .or_env();
    let info = match locator.resolve() {
        Ok(info) => info,
        Err(err) if err.is_not_found() => {
            let socket = locator.socket.unwrap_or_else(connection::default_socket);
            return Err(HubError::NotRunning(socket));
        }
        Err(err) => return Err(err.into()),
    };
    // The same JSON as the file; serde_json can't fail on this plain struct.
    println!("{}", serde_json::to_string(&info).unwrap_or_default());
    Ok(())
}

/// The key (from `--key-file`, or new) and the hub id, new at every start: a signature made for
/// one start of a hub is worthless after a restart and at any other hub sharing the key.
fn key_and_id(config: &HubConfig) -> Result<(Key, String), HubError> {
    let key = match &config.key_file {
        Some(path) => Key::load(path)?,
        None => Key::generate()?,
    };
    Ok((key, hmac_auth::new_hub_id()?))
}

/// Builds the gRPC server: the three warren services behind the HMAC layer, plus health and
/// reflection (v1 and v1alpha, which grpcurl 1.8 asks for).
fn serve<I, F>(
    hub: Arc<Hub>,
    verifier: Arc<Verifier>,
    incoming: I,
    shutdown: F,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>>, HubError>
where
    I: tokio_stream::Stream<Item = std::io::Result<tokio::net::UnixStream>> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warren_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warren_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let health_reporter_for_task = health_reporter.clone();
    tokio::spawn(async move {
        for name in [
            "warren.v1.Execution",
            "warren.v1.Control",
            "warren.v1.Registration",
        ] {
            health_reporter_for_task
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
    });

    Ok(Server::builder()
        .initial_stream_window_size(transport::STREAM_WINDOW)
        .initial_connection_window_size(transport::CONNECTION_WINDOW)
        .max_frame_size(transport::MAX_FRAME)
        .layer(auth::AuthLayer::new(verifier))
        .layer(input::InputBudgetLayer::new(hub.input_budget().clone()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            ExecutionServer::new(service::ExecutionService::new(hub.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            ControlServer::new(service::ControlService::new(hub.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            RegistrationServer::new(service::RegistrationService::new(hub))
                .max_decoding_message_size(validate::MAX_ENGINE_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming, shutdown))
}

/// Resolves on SIGINT, SIGTERM or `Control.Shutdown`.
async fn wait_for_stop(hub: &Hub) -> Result<StopRequest, HubError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(HubError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(HubError::Signals)?;
    Ok(tokio::select! {
        _ = interrupt.recv() => StopRequest::Hub,
        _ = terminate.recv() => StopRequest::Hub,
        request = hub.stop_requested() => request,
    })
}

/// The hub's settings from its flags.
fn settings(config: &HubConfig, hub_id: String) -> Settings {
    Settings {
        hub_id,
        heartbeat: config.heartbeat(),
        engine_timeout: config.engine_timeout(),
        reattach_grace: Duration::from_millis(config.reattach_grace_ms),
        log_limits: LogLimits {
            keep: config.max_output_kept,
            window: config.follow_window,
        },
        max_engine_deaths: config.max_engine_deaths,
        limits: Limits {
            max_queued: config.max_queued,
            max_queued_per_client: config.max_queued_per_client,
            max_engines: config.max_engines,
            max_engine_records: config.max_engine_records,
            max_followers_per_task: config.max_followers_per_task,
            max_streams_per_client: config.max_streams_per_client,
            max_follow_streams: config.max_follow_streams,
            follow_memory: usize::try_from(config.follow_memory).unwrap_or(usize::MAX),
            output_in_flight: 64 << 20,
            max_input_held: config.max_input_held,
        },
    }
}

/// Deletes history past the retention policy (tasks, and engines not seen for as long), at
/// start and then every minute.
async fn retention(hub: Arc<Hub>, max_age: Duration, max_bytes: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let max_age_us = max_age.as_micros().min(i64::MAX as u128) as i64;
        let now = warren_proto::now_us();
        let forgotten = hub.lock().forget_engines(now.saturating_sub(max_age_us));
        if forgotten > 0 {
            tracing::info!(
                engines = forgotten,
                "retention forgot engines gone for too long"
            );
        }
        let purged = hub
            .store()
            .query(move |conn| store::enforce_retention(conn, now, max_age_us, max_bytes))
            .await;
        match purged {
            Ok((0, _)) => {}
            Ok((tasks, bytes)) => tracing::info!(tasks, bytes, "retention purged old tasks"),
            Err(status) => tracing::warn!(%status, "retention could not run"),
        }
    }
}

/// The socket path the hub would use with this configuration.
pub fn socket_path(config: &HubConfig) -> PathBuf {
    config
        .socket
        .clone()
        .unwrap_or_else(connection::default_socket)
}

/// Whether `path` looks like a place a hub could serve.
pub fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
