//! One registration with the hub: say hello, then run what the hub assigns until the stream ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use warren_proto::auth::{HUB_TIME_HEADER, Key, Signer};
use warren_proto::connection::{self, ConnectionInfo};
use warren_proto::now_us;
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::registration_client::RegistrationClient;
use warren_proto::v1::{EngineMessage, Heartbeat, Hello, HubMessage, engine_message, hub_message};

use crate::config::EngineConfig;
use crate::runner::{self, Control, RunningTask};

/// Messages waiting to go to the hub; when full, task output waits (and so do the tasks).
const OUTBOX: usize = 64;
/// Largest message the engine accepts (an assignment carries the task's stdin).
const MAX_MESSAGE: usize = 64 << 20;

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// The hub told the engine to exit.
    Exit(String),
    /// The hub went away or refused for now; try again later.
    Retry(String),
    /// The hub refused in a way retrying can't fix.
    Fatal(String),
}

/// Where the hub is and how to sign for it, read afresh for each attempt: a restarted hub
/// may have a new key and id.
fn resolve(config: &EngineConfig) -> Result<(PathBuf, Signer), End> {
    if let (Some(socket), Some(key_file)) = (&config.socket, &config.key_file) {
        let key = Key::load(key_file).map_err(|e| End::Fatal(e.to_string()))?;
        let hub_id = config
            .hub_id
            .clone()
            .unwrap_or_else(|| key.default_hub_id());
        return Ok((socket.clone(), Signer::new(&key, &hub_id)));
    }
    let path = config
        .connection_file
        .clone()
        .unwrap_or_else(connection::default_connection_file);
    let info = ConnectionInfo::load(&path)
        .map_err(|e| End::Retry(format!("no usable connection file yet: {e}")))?;
    let signer = info.signer().map_err(|e| End::Fatal(e.to_string()))?;
    Ok((info.socket, signer))
}

/// Registers and serves one hub connection until it ends; sets `registered` once the hub
/// has welcomed the engine.
pub async fn serve(
    config: &EngineConfig,
    hello: &Hello,
    tasks: &mut HashMap<u64, RunningTask>,
    registered: &mut bool,
) -> End {
    let (socket, signer) = match resolve(config) {
        Ok(found) => found,
        Err(end) => return end,
    };
    let channel = match connect_unix(&socket).await {
        Ok(channel) => channel,
        Err(err) => {
            return End::Retry(format!(
                "cannot reach the hub at {}: {err}",
                socket.display()
            ));
        }
    };
    let signed = SignedChannel::new(channel, signer.clone());
    let mut client = RegistrationClient::new(signed)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

    let (out, out_rx) = mpsc::channel(OUTBOX);
    let hello_message = EngineMessage {
        kind: Some(engine_message::Kind::Hello(hello.clone())),
    };
    if out.send(hello_message).await.is_err() {
        return End::Retry("internal: outbox closed".into());
    }
    let mut inbound = match client.register(ReceiverStream::new(out_rx)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return refused(&status, &signer),
    };
    let welcome = match inbound.message().await {
        Ok(Some(HubMessage {
            kind: Some(hub_message::Kind::Welcome(welcome)),
        })) => welcome,
        Ok(_) => return End::Retry("the hub did not answer Hello with Welcome".into()),
        Err(status) => return refused(&status, &signer),
    };
    tracing::info!(engine = welcome.engine_id, socket = %socket.display(), "registered with the hub");
    *registered = true;

    let interval = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(10)));
    let mut heartbeat = tokio::time::interval(interval);
    loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(message)) => {
                    if let Some(end) = handle(message, config, &out, tasks) {
                        return end;
                    }
                }
                Ok(None) => return End::Retry("the hub closed the stream".into()),
                Err(status) => return End::Retry(format!("lost the hub: {}", status.message())),
            },
            _ = heartbeat.tick() => {
                // Skipped when output fills the outbox: the output itself shows we are alive.
                let _ = out.try_send(EngineMessage {
                    kind: Some(engine_message::Kind::Heartbeat(Heartbeat { time_us: now_us() })),
                });
            }
        }
    }
}

fn handle(
    message: HubMessage,
    config: &EngineConfig,
    out: &mpsc::Sender<EngineMessage>,
    tasks: &mut HashMap<u64, RunningTask>,
) -> Option<End> {
    match message.kind? {
        hub_message::Kind::Assign(assign) => {
            tasks.retain(|_, task| !task.is_finished());
            let spec = assign.spec.unwrap_or_default();
            tracing::debug!(task = assign.task_id, "assigned");
            let task = runner::start(assign.task_id, spec, out.clone(), config.kill_grace());
            tasks.insert(assign.task_id, task);
        }
        hub_message::Kind::Signal(signal) => {
            if let Some(task) = tasks.get(&signal.task_id) {
                task.send(Control::Signal(signal.signal));
            }
        }
        hub_message::Kind::Cancel(cancel) => {
            if let Some(task) = tasks.get(&cancel.task_id) {
                task.send(Control::Cancel);
            }
        }
        hub_message::Kind::Shutdown(shutdown) if shutdown.exit => {
            return Some(End::Exit(shutdown.reason));
        }
        hub_message::Kind::Shutdown(shutdown) => {
            return Some(End::Retry(shutdown.reason));
        }
        hub_message::Kind::Heartbeat(_) | hub_message::Kind::Welcome(_) => {}
    }
    None
}

/// Classifies a refused registration.
fn refused(status: &tonic::Status, signer: &Signer) -> End {
    if let Some(hub_time) = status
        .metadata()
        .get(HUB_TIME_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        signer.learn_hub_time(hub_time);
    }
    let why = format!("the hub refused registration: {}", status.message());
    match status.code() {
        Code::FailedPrecondition | Code::InvalidArgument => End::Fatal(why),
        _ => End::Retry(why),
    }
}
