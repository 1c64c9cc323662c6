//! The warren SDK: call a warren hub from Rust.
//!
//! A [`Client`] talks gRPC to the hub's Unix socket (directly, or through an `ssh -L`
//! forward) and signs every call with the hub's key, found in its connection file. It has a
//! typed method for every RPC and [`Client::run`], which submits a [`Job`] and streams back
//! every event of its tasks: when each starts, its stdout and stderr as they are written, and
//! how it ended.
//!
//! ```no_run
//! use warren::{Client, Job, proto::task_event::Kind};
//!
//! # async fn demo() -> Result<(), warren::Error> {
//! let client = Client::connect_default().await?;
//! let mut events = client.run(Job::argv(["uname", "-a"]).all()).await?;
//! while let Some(event) = events.message().await? {
//!     match event.kind {
//!         Some(Kind::Output(chunk)) => print!("[engine {}] {}", event.engine_id, String::from_utf8_lossy(&chunk.data)),
//!         Some(Kind::Result(result)) => println!("task {} ended {:?}", event.task_id, result.state()),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `examples/run.rs` is the same program, runnable: `cargo run -p warren --example run`.

mod error;
mod job;

pub use error::{Error, Result};
pub use job::Job;
pub use tonic;
/// The generated messages and clients of `warren.v1`.
pub use warren_proto::v1 as proto;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::{Response, Status, Streaming};
use warren_proto::PROTOCOL_VERSION;
use warren_proto::auth::{HUB_ID_HEADER, HUB_TIME_HEADER, Key, Signer};
use warren_proto::connection::{self, ConnectionInfo};
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::control_client::ControlClient;
use warren_proto::v1::execution_client::ExecutionClient;
use warren_proto::v1::{
    AbortReply, AbortRequest, EngineInfo, ExecuteRequest, GetTaskRequest, GetVersionRequest,
    InterruptReply, InterruptRequest, ListEnginesRequest, ListTasksReply, ListTasksRequest,
    PurgeReply, PurgeRequest, QueueStatusReply, QueueStatusRequest, ShutdownEnginesRequest,
    ShutdownRequest, StreamOutputRequest, TaskEvent, TaskInfo, VersionInfo, purge_request,
    task_event::Kind,
};

/// How long a unary call may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest message the SDK sends or accepts.
const MAX_MESSAGE: usize = 64 << 20;

/// A connection to one hub. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    channel: SignedChannel,
    timeout: Duration,
    /// How long a follow stream may stay silent (the hub sends heartbeats much more often).
    idle_limit: Duration,
}

/// The events of one or more tasks, as they happen. Heartbeats are taken care of: a stream
/// that falls silent for several heartbeat intervals ends with [`Error::Silent`] instead of
/// hanging.
#[derive(Debug)]
pub struct Events {
    inner: Streaming<TaskEvent>,
    idle_limit: Duration,
}

impl Events {
    /// The next event, or `None` when every task followed has ended.
    pub async fn message(&mut self) -> Result<Option<TaskEvent>> {
        loop {
            let next = tokio::time::timeout(self.idle_limit, self.inner.message()).await;
            match next {
                Err(_) => return Err(Error::Silent(self.idle_limit)),
                Ok(Err(status)) => return Err(status.into()),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(event))) if matches!(event.kind, Some(Kind::Heartbeat(_))) => {}
                Ok(Ok(Some(event))) => return Ok(Some(event)),
            }
        }
    }
}

/// Asks the hub on `socket` whether it is serving, without a key (gRPC health checking, which
/// the hub answers unsigned).
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

/// The connection file a client uses when told nothing: `$WARREN_CONNECTION_FILE`, else the
/// one beside the default socket.
pub fn default_connection_file() -> PathBuf {
    std::env::var_os("WARREN_CONNECTION_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(connection::default_connection_file)
}

/// Teaches `signer` what an UNAUTHENTICATED refusal says: the hub's id (new at each start of
/// the hub) or its clock. True if it learned something, so the call is worth signing again.
pub fn learn_from_refusal(signer: &Signer, status: &Status) -> bool {
    if status.code() != tonic::Code::Unauthenticated {
        return false;
    }
    let trailer = |name| {
        status
            .metadata()
            .get(name)
            .and_then(|v: &tonic::metadata::MetadataValue<_>| v.to_str().ok())
    };
    if let Some(hub_id) = trailer(HUB_ID_HEADER)
        && signer.learn_hub_id(hub_id)
    {
        return true;
    }
    match trailer(HUB_TIME_HEADER).and_then(|v| v.parse::<i64>().ok()) {
        Some(hub_time) => {
            signer.learn_hub_time(hub_time);
            true
        }
        None => false,
    }
}

/// Calls `$client().$method($request)` through [`Client::call`]; the request expression is
/// evaluated for each attempt.
macro_rules! rpc {
    ($self:ident, $client:ident, $method:ident, $request:expr) => {
        $self
            .call(|| {
                let mut client = $self.$client();
                let request = $request;
                async move { client.$method(request).await }
            })
            .await
    };
}

impl Client {
    /// Connects to the hub described by a connection file.
    pub async fn connect(connection_file: impl AsRef<Path>) -> Result<Self> {
        let path = connection_file.as_ref();
        let info = ConnectionInfo::load(path).map_err(|source| Error::ConnectionFile {
            path: path.to_owned(),
            source,
        })?;
        let signer = info.signer()?;
        Self::connect_signed(&info.socket, signer).await
    }

    /// Connects using [`default_connection_file`].
    pub async fn connect_default() -> Result<Self> {
        Self::connect(default_connection_file()).await
    }

    /// Connects to a socket with a key file; the hub's id (new at each of its starts) is
    /// learned from its first answer.
    pub async fn connect_with_key(
        socket: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<Self> {
        let key = Key::load(key_file.as_ref())?;
        Self::connect_signed(socket.as_ref(), Signer::new(&key, "")).await
    }

    /// Connects to a socket, signing with `signer`, and checks that the hub accepts us.
    pub async fn connect_signed(socket: &Path, signer: Signer) -> Result<Self> {
        let channel = connect_unix(socket).await.map_err(|err| Error::NoHub {
            socket: socket.to_owned(),
            reason: std::error::Error::source(&err)
                .map_or_else(|| err.to_string(), ToString::to_string),
        })?;
        let mut client = Self {
            channel: SignedChannel::new(channel, signer),
            timeout: DEFAULT_TIMEOUT,
            idle_limit: DEFAULT_TIMEOUT,
        };
        // Checks the key and protocol now, with a clear error, and learns any clock skew.
        let version = client.version().await?;
        let heartbeat = Duration::from_millis(u64::from(version.heartbeat_ms.max(1)));
        client.idle_limit = heartbeat * 3 + Duration::from_secs(2);
        Ok(client)
    }

    /// Uses this deadline for every unary call from now on.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The generated `Control` client, signing every call.
    pub fn control(&self) -> ControlClient<SignedChannel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The generated `Execution` client, signing every call.
    pub fn execution(&self) -> ExecutionClient<SignedChannel> {
        ExecutionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The signer, which follows the hub's id and clock as the hub reports them.
    pub fn signer(&self) -> &Signer {
        self.channel.signer()
    }

    /// Runs a call under the deadline, again (at most twice more) each time the hub's refusal
    /// taught the signer something new: its id after a restart, or its clock.
    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let timed = |fut: Fut| async {
            tokio::time::timeout(self.timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "the hub did not answer within {:?}",
                        self.timeout
                    )))
                })
        };
        let mut retries = 0;
        loop {
            match timed(call()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retries < 2 && learn_from_refusal(self.signer(), &status) => {
                    retries += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    /// The hub's protocol version, software version, id and clock.
    pub async fn version(&self) -> Result<VersionInfo> {
        rpc!(
            self,
            control,
            get_version,
            GetVersionRequest {
                protocol_version: PROTOCOL_VERSION,
            }
        )
    }

    /// The connected engines.
    pub async fn engines(&self) -> Result<Vec<EngineInfo>> {
        let reply = rpc!(self, control, list_engines, ListEnginesRequest {})?;
        Ok(reply.engines)
    }

    /// One task's record.
    pub async fn task(&self, task_id: u64) -> Result<TaskInfo> {
        rpc!(self, control, get_task, GetTaskRequest { task_id })
    }

    /// Tasks matching a filter, newest first.
    pub async fn tasks(&self, filter: ListTasksRequest) -> Result<Vec<TaskInfo>> {
        let reply = rpc!(self, control, list_tasks, filter.clone())?;
        Ok(reply.tasks)
    }

    /// Queue lengths, overall and per engine.
    pub async fn queue_status(&self) -> Result<QueueStatusReply> {
        rpc!(self, control, queue_status, QueueStatusRequest {})
    }

    /// Aborts tasks: queued ones never start, running ones are terminated.
    pub async fn abort(&self, task_ids: &[u64]) -> Result<AbortReply> {
        let request = AbortRequest {
            task_ids: task_ids.to_vec(),
        };
        rpc!(self, control, abort, request.clone())
    }

    /// Sends a signal (0 for SIGINT) to running tasks.
    pub async fn interrupt(&self, task_ids: &[u64], signal: i32) -> Result<InterruptReply> {
        let request = InterruptRequest {
            task_ids: task_ids.to_vec(),
            signal,
        };
        rpc!(self, control, interrupt, request.clone())
    }

    /// Tells engines to exit (all if `engine_ids` is empty); returns which were told.
    pub async fn shutdown_engines(&self, engine_ids: &[u32]) -> Result<Vec<u32>> {
        let request = ShutdownEnginesRequest {
            engine_ids: engine_ids.to_vec(),
        };
        let reply = rpc!(self, control, shutdown_engines, request.clone())?;
        Ok(reply.engine_ids)
    }

    /// Stops the hub, and its engines too if `engines` is set.
    pub async fn shutdown(&self, engines: bool) -> Result<()> {
        rpc!(self, control, shutdown, ShutdownRequest { engines })?;
        Ok(())
    }

    /// Submits a job and returns its task ids at once.
    pub async fn submit(&self, job: impl Into<ExecuteRequest>) -> Result<Vec<u64>> {
        let request = job.into();
        let reply = rpc!(self, execution, submit, request.clone())?;
        Ok(reply.task_ids)
    }

    /// Submits a job and streams every event of its tasks until all have ended.
    pub async fn run(&self, job: impl Into<ExecuteRequest>) -> Result<Events> {
        let request = job.into();
        let inner = rpc!(self, execution, execute, request.clone())?;
        Ok(self.events(inner))
    }

    /// Replays a task's events from `from_seq`, then follows it until it ends.
    pub async fn follow(&self, task_id: u64, from_seq: u64) -> Result<Events> {
        let request = StreamOutputRequest { task_id, from_seq };
        let inner = rpc!(self, execution, stream_output, request)?;
        Ok(self.events(inner))
    }

    fn events(&self, inner: Streaming<TaskEvent>) -> Events {
        Events {
            inner,
            idle_limit: self.idle_limit,
        }
    }

    /// Deletes finished tasks from the hub's history; returns how many and their kept bytes.
    pub async fn purge(&self, selector: purge_request::Selector) -> Result<PurgeReply> {
        let request = PurgeRequest {
            selector: Some(selector),
        };
        rpc!(self, control, purge, request.clone())
    }

    /// A page of tasks (see [`ListTasksReply::next_page_token`] for the next).
    pub async fn tasks_page(&self, filter: ListTasksRequest) -> Result<ListTasksReply> {
        rpc!(self, control, list_tasks, filter.clone())
    }
}
