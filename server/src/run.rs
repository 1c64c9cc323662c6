//! The hub's life: start-up, serving, and the shutdown that drains.
//!
//! Start-up opens and checks the history, binds the socket inside a private directory, writes
//! the connection file beside it and carries on the unfinished tasks. Shutdown goes the way
//! linkerd2-proxy's does: a signal (SIGINT, SIGTERM or `Control.Shutdown`), then a graceful
//! stop (no new work; with `--engines`, the engines' ends recorded, for the shutdown grace at
//! most; follow streams told where to pick up), then a deadline for open connections and the
//! hub's own background work, past which the hub exits anyway. The socket and the connection
//! file are removed however the hub ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use warren_proto::auth::{self as hmac_auth, Key, KeyError, Verifier};
use warren_proto::connection::{self, ConnectionError, ConnectionInfo};

use crate::activation::{self, ActivationError};
use crate::config::{ConfigError, HubConfig};
use crate::serve;
use crate::socket::{self, SocketError};
use crate::state::{Hub, Settings, StopRequest};
use crate::store::{Location, Store, StoreError};

/// Why the hub could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The flags can't work together.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    Locate(#[from] warren_proto::locate::LocateError),
    /// The task history can't be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The socket systemd passed was refused.
    #[error(transparent)]
    Activation(#[from] ActivationError),
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
pub async fn run(config: HubConfig) -> Result<(), RunError> {
    config.check()?;
    if let Some(path) = &config.new_key_file {
        Key::generate()?.save(path)?;
        println!("wrote a new key to {}", path.display());
        return Ok(());
    }
    if config.print_connection {
        return print_connection(config.socket.as_deref());
    }
    // A socket systemd passed (socket activation) is checked by the same rules as our own.
    let activated = activation::passed_listener(config.socket.as_deref())?;
    let socket_path = match &activated {
        Some((_, path)) => path.clone(),
        None => socket::absolute(
            &config
                .socket
                .clone()
                .unwrap_or_else(connection::default_socket),
        )?,
    };
    let (key, hub_id) = key_and_id(&config)?;
    // Refuse an unusable socket before touching the history.
    if activated.is_none() {
        socket::check(&socket_path)?;
    }
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

    let connection_file = connection::connection_file_for(&socket_path);
    let (listener, _cleanup) = match activated {
        // systemd's socket stays for the next start; only the connection file goes.
        Some((listener, _)) => (
            socket::from_passed(listener)?,
            Cleanup {
                paths: vec![connection_file.clone()],
            },
        ),
        None => (
            socket::bind(&socket_path)?,
            Cleanup {
                paths: vec![socket_path.clone(), connection_file.clone()],
            },
        ),
    };
    ConnectionInfo::new(
        socket_path.clone(),
        hub_id.clone(),
        &key,
        std::process::id(),
    )
    .save(&connection_file)?;

    let hub = Hub::new(Settings::new(&config, hub_id.clone()), store, recovered);
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

    hub.start_upkeep(commits);
    let uid = rustix::process::geteuid().as_raw();
    let stopped = hub.background().stopping();
    let server = tokio::spawn(serve::serve(
        hub.clone(),
        verifier,
        socket::incoming(listener, uid),
        stopped,
    )?);

    activation::notify(&format!(
        "READY=1\nSTATUS=serving on {}",
        socket_path.display()
    ));

    // The signal.
    let request = wait_for_stop(&hub).await?;
    tracing::info!(?request, "hub stopping");
    activation::notify("STOPPING=1");
    // The graceful stop.
    hub.wind_down(request == StopRequest::HubAndEngines).await;
    hub.stop();
    // The deadline: connections and background work get the drain timeout to end.
    let drain = config.drain_timeout();
    let deadline = tokio::time::Instant::now() + drain;
    if !hub.background().stop(deadline).await {
        tracing::warn!(
            ?drain,
            "background work did not end in time; stopping anyway"
        );
    }
    match tokio::time::timeout_at(deadline, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join_error)) => tracing::error!(%join_error, "server task failed"),
        Err(_) => tracing::warn!(?drain, "connections did not close in time; stopping anyway"),
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// Prints the connection file of the hub on `socket` (or the default socket), found by the
/// rule every warren program shares (`Locator`), after the private-file checks.
fn print_connection(socket: Option<&Path>) -> Result<(), RunError> {
    let locator = warren_proto::locate::Locator {
        socket: socket.map(Path::to_owned),
        ..warren_proto::locate::Locator::default()
    }
    .or_env();
    let info = match locator.resolve() {
        Ok(info) => info,
        Err(err) if err.is_not_found() => {
            let socket = locator.socket.unwrap_or_else(connection::default_socket);
            return Err(RunError::NotRunning(socket));
        }
        Err(err) => return Err(err.into()),
    };
    // The same JSON as the file; serde_json can't fail on this plain struct.
    println!("{}", serde_json::to_string(&info).unwrap_or_default());
    Ok(())
}

/// The key (from `--key-file`, or new) and the hub id, new at every start: a signature made for
/// one start of a hub is worthless after a restart and at any other hub sharing the key.
fn key_and_id(config: &HubConfig) -> Result<(Key, String), RunError> {
    let key = match &config.key_file {
        Some(path) => Key::load(path)?,
        None => Key::generate()?,
    };
    Ok((key, hmac_auth::new_hub_id()?))
}

/// Resolves on SIGINT, SIGTERM or `Control.Shutdown`.
async fn wait_for_stop(hub: &Hub) -> Result<StopRequest, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    Ok(tokio::select! {
        _ = interrupt.recv() => StopRequest::Hub,
        _ = terminate.recv() => StopRequest::Hub,
        request = hub.stop_requested() => request,
    })
}
