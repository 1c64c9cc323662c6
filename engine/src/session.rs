//! One registration with the hub: say hello (with the tasks still here), then send output
//! and run what the hub assigns until the stream ends, the hub falls silent, or it is time to
//! stop. It runs in a `hub` span that carries the id the hub gave the engine, once known.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use warren_proto::auth::{HUB_ID_HEADER, HUB_TIME_HEADER, Signer};
use warren_proto::locate::LocateError;
use warren_proto::now_us;
use warren_proto::passthrough::{Received, call_streaming};
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::{EngineMessage, Heartbeat, Hello, HubMessage, engine_message, hub_message};

use crate::config::EngineConfig;
use crate::control::Control;
use crate::files::Transfers;
use crate::goodbye;
use crate::runner::Runners;
use crate::sessions::Sessions;
use crate::shutdown::Shutdown;
use crate::tasks::Tasks;

/// Messages waiting to go to the hub; when full, sending waits (and so does task output).
const OUTBOX: usize = 64;
/// Messages taken from the tasks per round.
const BATCH: usize = 32;
/// Largest message the engine accepts (an assignment carries the task's stdin).
const MAX_MESSAGE: usize = 64 << 20;

/// The method an engine registers with, on one stream for as long as it serves the hub.
const REGISTER: &str = "/warren.v1.Registration/Register";
/// The shortest heartbeat interval the engine keeps to, whatever the hub asks.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// The shortest silence after which the engine gives the hub up, whatever the hub asks.
const MIN_SILENCE: Duration = Duration::from_millis(100);

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// Time to exit (told by the hub, or by a signal, and every task is settled).
    Exit(String),
    /// The hub went away or refused for now; try again later.
    Retry(String),
    /// The hub refused in a way retrying can't fix.
    Fatal(String),
}

/// What a session works with.
pub struct Context<'a> {
    /// The flags.
    pub config: &'a EngineConfig,
    /// The engine's introduction, without tasks.
    pub hello: &'a Hello,
    /// The engine's tasks.
    pub tasks: &'a Arc<Tasks>,
    /// Their runners.
    pub runners: &'a Runners,
    /// The sessions (interpreters) and their runners.
    pub sessions: &'a Arc<Sessions>,
    /// Whether a signal has asked the engine to stop.
    pub shutdown: &'a mut Shutdown,
}

/// Where the hub is and how to sign for it, read afresh for each attempt: a restarted hub
/// may have a new key and id.
fn resolve(config: &EngineConfig) -> Result<(PathBuf, Signer), End> {
    // With a key file and no connection file the hub's id is not known (it is new at each of
    // the hub's starts): the signer learns it from the first refusal.
    let info = config.locator().resolve().map_err(|err| match err {
        LocateError::ConnectionFile { .. } => {
            End::Retry(format!("no usable connection file yet: {err}"))
        }
        LocateError::Key(_) | LocateError::RemoteConflict | LocateError::Config(_) => {
            End::Fatal(err.to_string())
        }
    })?;
    let signer = info.signer().map_err(|e| End::Fatal(e.to_string()))?;
    Ok((info.socket, signer))
}

/// Registers and serves one hub connection until it ends; sets `registered` once the hub
/// has welcomed the engine.
pub async fn serve(ctx: Context<'_>, registered: &mut bool) -> End {
    let (socket, signer) = match resolve(ctx.config) {
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
    let mut channel = SignedChannel::new(channel, signer.clone());

    let mut relearned = false;
    let (out, mut inbound) = loop {
        let mut hello = ctx.hello.clone();
        hello.tasks = ctx.tasks.begin_session();
        hello.sessions = ctx.sessions.begin_session();
        let (out, out_rx) = mpsc::channel(OUTBOX);
        let hello = EngineMessage {
            kind: Some(engine_message::Kind::Hello(hello)),
        };
        if out.send(hello).await.is_err() {
            return End::Retry("internal: outbox closed".into());
        }
        // Through passthrough: output chunks go to the socket without a copy into tonic's
        // buffer.
        let register = call_streaming(
            &mut channel,
            REGISTER,
            ReceiverStream::new(out_rx),
            MAX_MESSAGE,
        );
        match register.await {
            Ok(response) => break (out, response.into_inner()),
            // A hub that restarted has a new id, which its refusal names: sign once more.
            Err(status) if !relearned && learned_hub_id(&status, &signer) => relearned = true,
            Err(status) => return refused(&status, &signer),
        }
    };
    let welcome = match inbound.message().await {
        Ok(Some(HubMessage {
            kind: Some(hub_message::Kind::Welcome(welcome)),
        })) => welcome,
        Ok(_) => return End::Retry("the hub did not answer Hello with Welcome".into()),
        Err(status) => return refused(&status, &signer),
    };
    tracing::Span::current().record("engine", welcome.engine_id);
    tracing::info!(socket = %socket.display(), "registered with the hub");
    *registered = true;
    ctx.tasks.hub_is(&welcome.hub_id);
    ctx.tasks.set_connected(true);
    converse(ctx, &welcome, &out, &mut inbound).await
}

async fn converse(
    ctx: Context<'_>,
    welcome: &warren_proto::v1::Welcome,
    out: &mpsc::Sender<EngineMessage>,
    inbound: &mut Received<HubMessage>,
) -> End {
    let Context {
        config,
        tasks,
        runners,
        sessions,
        shutdown,
        ..
    } = ctx;
    let interval = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms));
    let silence_limit = Duration::from_millis(u64::from(welcome.timeout_ms)).max(MIN_SILENCE);
    let mut heartbeat = tokio::time::interval(interval.max(MIN_HEARTBEAT));
    let mut last_heard = Instant::now();
    let mut draining: Option<(Instant, String)> = None;
    let mut files = Transfers::new(!config.no_files, out.clone());
    let end = loop {
        if let Some((deadline, why)) = &draining
            && ((tasks.is_empty() && sessions.is_empty()) || Instant::now() >= *deadline)
        {
            goodbye::say(out, inbound, why).await;
            break End::Exit(why.clone());
        }
        // A signal makes the engine leave before it sends more news of its tasks (the signal
        // may have reached them too, as Slurm's does): the hub settles them as lost with it.
        if draining.is_none()
            && let Some(why) = shutdown.now().await
        {
            goodbye::say(out, inbound, &why).await;
            break End::Exit(why);
        }
        let changed = tasks.changed.notified();
        let mut batch = sessions.next_messages();
        batch.extend(tasks.next_messages(BATCH));
        let sent_some = !batch.is_empty();
        for message in batch {
            if out.send(message).await.is_err() {
                break;
            }
        }
        let drain_deadline = draining.as_ref().map(|(deadline, _)| *deadline);
        // In this order: while there is always news to send, the hub's messages are still
        // read between batches, and a message that waits beats the silence deadline.
        tokio::select! {
            biased;
            why = shutdown.requested(), if draining.is_none() => {
                goodbye::say(out, inbound, &why).await;
                break End::Exit(why);
            }
            _ = heartbeat.tick() => {
                // Skipped when output fills the outbox: the output itself shows we are alive.
                let _ = out.try_send(EngineMessage {
                    kind: Some(engine_message::Kind::Heartbeat(Heartbeat { time_us: now_us() })),
                });
            }
            message = inbound.message() => match message {
                Ok(Some(message)) => {
                    last_heard = Instant::now();
                    match handle(message, welcome.engine_id, tasks, runners, sessions, &mut files) {
                        Some(Handled::Exit(why)) if draining.is_none() => {
                            draining = Some(begin_drain(tasks, sessions, config, why));
                        }
                        Some(Handled::Exit(_)) => {}
                        Some(Handled::Retry(why)) => break End::Retry(why),
                        None => {}
                    }
                }
                Ok(None) => break End::Retry("the hub closed the stream".into()),
                Err(status) => break End::Retry(format!("lost the hub: {}", status.message())),
            },
            () = tokio::time::sleep_until(last_heard + silence_limit) => {
                break End::Retry(format!("the hub has been silent for {silence_limit:?}"));
            }
            () = changed => {}
            () = sleep_or_never(drain_deadline) => {}
            // More news may wait behind the batch just sent.
            () = std::future::ready(()), if sent_some => {}
        }
    };
    tasks.set_connected(false);
    end
}

/// Stops every task and gives their ends time to reach the hub.
fn begin_drain(
    tasks: &Tasks,
    sessions: &Sessions,
    config: &EngineConfig,
    why: String,
) -> (Instant, String) {
    tracing::info!(%why, tasks = tasks.running(), "stopping tasks before exiting");
    tasks.stop_all(&why);
    sessions.close_all(&why);
    (Instant::now() + config.stop_wait(), why)
}

async fn sleep_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a hub message asks of the session.
enum Handled {
    Exit(String),
    Retry(String),
}

fn handle(
    message: HubMessage,
    engine_id: u32,
    tasks: &Arc<Tasks>,
    runners: &Runners,
    sessions: &Arc<Sessions>,
    files: &mut Transfers,
) -> Option<Handled> {
    match message.kind? {
        hub_message::Kind::Assign(assign) => {
            if tasks.has(assign.task_id, assign.attempt) {
                return None;
            }
            tracing::debug!(task = assign.task_id, attempt = assign.attempt, "assigned");
            let spec = assign.spec.unwrap_or_default();
            runners.start(engine_id, assign.task_id, assign.attempt, spec);
        }
        hub_message::Kind::Signal(signal) => {
            tasks.control(signal.task_id, Control::Signal(signal.signal));
        }
        hub_message::Kind::Cancel(cancel) if cancel.discard => {
            tracing::info!(
                task = cancel.task_id,
                attempt = cancel.attempt,
                "the hub wrote this task off; discarding it"
            );
            tasks.discard(cancel.task_id, cancel.attempt);
        }
        hub_message::Kind::Cancel(cancel) => tasks.control(cancel.task_id, Control::Cancel),
        hub_message::Kind::Ack(ack) => {
            tasks.ack(ack.task_id, ack.attempt, ack.chunk_seq, ack.finished);
        }
        hub_message::Kind::Shutdown(shutdown) if shutdown.exit => {
            return Some(Handled::Exit(shutdown.reason));
        }
        hub_message::Kind::Shutdown(shutdown) => return Some(Handled::Retry(shutdown.reason)),
        hub_message::Kind::OpenSession(open) => sessions.open(engine_id, open),
        hub_message::Kind::CloseSession(close) => sessions.close(close.session_id, close.reason),
        hub_message::Kind::RunCell(run) => sessions.run_cell(run),
        hub_message::Kind::StdinData(data) => {
            let (task_id, attempt) = (data.task_id, data.attempt);
            tasks.control_attempt(task_id, attempt, Control::Stdin(data));
        }
        hub_message::Kind::ResizeTask(resize) => {
            if let Some(size) = resize.size {
                tasks.control_attempt(resize.task_id, resize.attempt, Control::Resize(size));
            }
        }
        hub_message::Kind::Heartbeat(_) | hub_message::Kind::Welcome(_) => {}
        kind @ (hub_message::Kind::FileOpen(_)
        | hub_message::Kind::FileData(_)
        | hub_message::Kind::FileCredit(_)
        | hub_message::Kind::FileClose(_)) => files.handle(kind),
    }
    None
}

/// Takes the hub id a bad-signature refusal names; true if the signer did not have it.
fn learned_hub_id(status: &tonic::Status, signer: &Signer) -> bool {
    status.code() == Code::Unauthenticated
        && status
            .metadata()
            .get(HUB_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|id| signer.learn_hub_id(id))
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
