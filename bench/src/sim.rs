//! Lightweight simulated engines: registration streams that "run" each task at once (started,
//! then succeeded), to load the hub with many engines and many tasks without processes. They
//! open sessions at once too (ready, no interpreter) and end each cell at once, ok.

use anyhow::Context;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use warren_proto::connection::ConnectionInfo;
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::registration_client::RegistrationClient;
use warren_proto::v1::{
    EngineMessage, Heartbeat, Hello, SessionStarted, TaskFinished, TaskResult, TaskStarted,
    TaskState, engine_message, hub_message, task_result,
};

/// Streams per connection, well under HTTP/2's usual concurrent-stream limits.
const PER_CONNECTION: usize = 50;

/// Simulated engines, stopped when dropped.
pub(crate) struct SimEngines(Vec<JoinHandle<()>>);

impl Drop for SimEngines {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn message(kind: engine_message::Kind) -> EngineMessage {
    EngineMessage { kind: Some(kind) }
}

/// Registers `n` simulated engines with the hub behind `connection_file`.
pub(crate) async fn start(
    connection_file: &std::path::Path,
    n: usize,
) -> anyhow::Result<SimEngines> {
    let info = ConnectionInfo::load(connection_file)?;
    let signer = info.signer()?;
    let mut tasks = Vec::with_capacity(n);
    let mut channel = None;
    for i in 0..n {
        if i % PER_CONNECTION == 0 {
            channel = Some(SignedChannel::new(
                connect_unix(&info.socket).await?,
                signer.clone(),
            ));
        }
        let mut client = RegistrationClient::new(channel.clone().context("channel")?);
        let (tx, rx) = mpsc::channel(256);
        tx.send(message(engine_message::Kind::Hello(Hello {
            protocol_version: warren_proto::PROTOCOL_VERSION,
            uuid: format!("simulated-{i}"),
            hostname: "simulated".into(),
            pid: std::process::id(),
            slots: 1,
            version: warren_proto::VERSION.into(),
            ..Hello::default()
        })))
        .await?;
        let mut inbound = client.register(ReceiverStream::new(rx)).await?.into_inner();
        tasks.push(tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    received = inbound.message() => {
                        let Ok(Some(received)) = received else { return };
                        let (task_id, attempt) = match received.kind {
                            Some(hub_message::Kind::Assign(assign)) => (assign.task_id, assign.attempt),
                            Some(hub_message::Kind::RunCell(run)) => (run.task_id, run.attempt),
                            Some(hub_message::Kind::OpenSession(open)) => {
                                let started = SessionStarted {
                                    session_id: open.session_id,
                                    generation: open.generation,
                                    pid: 1,
                                    banner: "simulated".into(),
                                    started_us: warren_proto::now_us(),
                                };
                                if tx.send(message(engine_message::Kind::SessionStarted(started))).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                            _ => continue,
                        };
                        {
                            let now = warren_proto::now_us();
                            let started = TaskStarted { task_id, pid: 1, started_us: now, attempt };
                            let result = TaskResult {
                                state: TaskState::Succeeded as i32,
                                exit: Some(task_result::Exit::ExitCode(0)),
                                started_us: now,
                                finished_us: now,
                                attempt,
                                ..TaskResult::default()
                            };
                            let finished = TaskFinished { task_id, result: Some(result), attempt, chunks: 0 };
                            if tx.send(message(engine_message::Kind::Started(started))).await.is_err()
                                || tx.send(message(engine_message::Kind::Finished(finished))).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    _ = beat.tick() => {
                        let beat = Heartbeat { time_us: warren_proto::now_us() };
                        if tx.send(message(engine_message::Kind::Heartbeat(beat))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    Ok(SimEngines(tasks))
}
