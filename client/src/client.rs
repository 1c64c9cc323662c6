//! [`Client`]: a typed method for every call to the hub.

use futures_core::Stream;
use futures_util::{TryStreamExt, stream};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tonic::{Response, Status};
use warren_proto::PROTOCOL_VERSION;
use warren_proto::auth::{HUB_ID_HEADER, HUB_TIME_HEADER, Signer};
use warren_proto::passthrough::{Received, call_server_streaming};
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::control_client::ControlClient;
use warren_proto::v1::execution_client::ExecutionClient;
use warren_proto::v1::{
    AbortReply, AbortRequest, EngineInfo, ExecuteRequest, GetTaskRequest, GetVersionRequest,
    InterruptReply, InterruptRequest, ListEnginesRequest, ListTasksRequest, PurgeReply,
    PurgeRequest, QueueStatusReply, QueueStatusRequest, ShutdownEnginesRequest, ShutdownRequest,
    StreamOutputRequest, TaskInfo, VersionInfo, purge_request,
};

use crate::events::{Events, RawEvents};
use crate::{ClientBuilder, Error, Result};

/// Largest message the SDK sends or accepts.
const MAX_MESSAGE: usize = 64 << 20;

const EXECUTE: &str = "/warren.v1.Execution/Execute";
const STREAM_OUTPUT: &str = "/warren.v1.Execution/StreamOutput";

/// A connection to one hub. Cheap to clone; clones share the connection.
///
/// ```no_run
/// # async fn f() -> warren::Result<()> {
/// let client = warren::Client::connect("/run/user/1000/warren/hub.json").await?;
/// for engine in client.engines().await? {
///     println!("engine {} on {}", engine.id, engine.hostname);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    channel: SignedChannel,
    settings: ClientBuilder,
    timeout: Duration,
    /// How long a follow stream may stay silent (the hub sends heartbeats much more often).
    idle_limit: Duration,
}

/// One page of a task listing, and where the next begins.
///
/// ```no_run
/// # async fn f(client: warren::Client) -> warren::Result<()> {
/// let mut filter = warren::proto::ListTasksRequest { limit: 100, ..Default::default() };
/// loop {
///     let page = client.tasks_page(filter.clone()).await?;
///     println!("{} tasks", page.tasks.len());
///     match page.next_page_token {
///         Some(token) => filter.page_token = token,
///         None => break,
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskPage {
    /// The tasks, newest first.
    pub tasks: Vec<TaskInfo>,
    /// The `page_token` of the next page, if there are more tasks.
    pub next_page_token: Option<String>,
}

/// Teaches `signer` what an UNAUTHENTICATED refusal says: the hub's id (new at each start of
/// the hub) or its clock. True if it learned something, so the call is worth signing again.
pub(crate) fn learn_from_refusal(signer: &Signer, status: &Status) -> bool {
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
    /// Connects to the hub described by a connection file: the short form of
    /// [`ClientBuilder::connection_file`] and [`ClientBuilder::connect`].
    ///
    /// ```no_run
    /// # async fn f() -> warren::Result<()> {
    /// let client = warren::Client::connect("/tmp/warren-1000/hub.json").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(connection_file: impl AsRef<Path>) -> Result<Self> {
        ClientBuilder::new()
            .connection_file(connection_file.as_ref())
            .connect()
            .await
    }

    /// The settings to connect with, to change before [`ClientBuilder::connect`].
    ///
    /// ```no_run
    /// # async fn f() -> warren::Result<()> {
    /// let client = warren::Client::builder().remote("lab").connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Connects to `socket`, signing with `signer`, and checks that the hub accepts us.
    pub(crate) async fn dial(
        socket: &Path,
        signer: Signer,
        settings: ClientBuilder,
    ) -> Result<Self> {
        let channel = connect_unix(socket).await.map_err(|err| Error::NoHub {
            socket: socket.to_owned(),
            reason: std::error::Error::source(&err)
                .map_or_else(|| err.to_string(), ToString::to_string),
        })?;
        let timeout = settings.timeout_setting();
        let mut client = Self {
            channel: SignedChannel::new(channel, signer),
            settings,
            timeout,
            idle_limit: timeout,
        };
        // Checks the key and protocol now, with a clear error, and learns any clock skew.
        let version = client.version().await?;
        let heartbeat = Duration::from_millis(u64::from(version.heartbeat_ms.max(1)));
        client.idle_limit = heartbeat * 3 + Duration::from_secs(2);
        Ok(client)
    }

    /// Finds the hub again by the same settings, reading its files afresh (a restarted hub
    /// has a new id and may have a new key), and connects; tries again with backoff for as
    /// long as [`ClientBuilder::reconnect`] says.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let client = client.reconnect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reconnect(&self) -> Result<Self> {
        self.settings.reconnect_now().await
    }

    /// The generated `Control` client, signing every call.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> Result<(), tonic::Status> {
    /// let reply = client.control().list_engines(warren::proto::ListEnginesRequest {}).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn control(&self) -> ControlClient<SignedChannel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The generated `Execution` client, signing every call.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> Result<(), tonic::Status> {
    /// let request = warren::Job::script("true").into_request();
    /// let reply = client.execution().submit(request).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn execution(&self) -> ExecutionClient<SignedChannel> {
        ExecutionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The deadline of unary calls.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a follow stream may stay silent.
    pub(crate) fn idle(&self) -> Duration {
        self.idle_limit
    }

    /// The signer, which follows the hub's id and clock as the hub reports them.
    ///
    /// ```no_run
    /// # fn f(client: warren::Client) {
    /// println!("hub id {}", client.signer().hub_id());
    /// # }
    /// ```
    pub fn signer(&self) -> &Signer {
        self.channel.signer()
    }

    /// Runs a call under the deadline, again (at most twice more) each time the hub's refusal
    /// taught the signer something new: its id after a restart, or its clock.
    pub(crate) async fn call<T, F, Fut>(&self, mut call: F) -> Result<T>
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
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// println!("hub {}", client.version().await?.hub_version);
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let engines = client.engines().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn engines(&self) -> Result<Vec<EngineInfo>> {
        let reply = rpc!(self, control, list_engines, ListEnginesRequest {})?;
        Ok(reply.engines)
    }

    /// One task's record.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let task = client.task(7).await?;
    /// println!("task 7 is {}", task.state().label());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn task(&self, task_id: u64) -> Result<TaskInfo> {
        rpc!(self, control, get_task, GetTaskRequest { task_id })
    }

    /// One page of the tasks matching a filter, newest first, from the filter's `page_token`
    /// on (at most its `limit`; 0 lets the hub choose). See [`TaskPage`] for the next.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let first = client.tasks_page(Default::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn tasks_page(&self, filter: ListTasksRequest) -> Result<TaskPage> {
        let reply = rpc!(self, control, list_tasks, filter.clone())?;
        Ok(TaskPage {
            tasks: reply.tasks,
            next_page_token: Some(reply.next_page_token).filter(|token| !token.is_empty()),
        })
    }

    /// Every task matching a filter, newest first, page after page (of the filter's `limit`)
    /// as the stream is read.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use warren::proto::{ListTasksRequest, TaskState};
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let failed: Vec<_> = client
    ///     .tasks(ListTasksRequest { states: vec![TaskState::Failed as i32], ..Default::default() })
    ///     .try_collect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tasks(
        &self,
        filter: ListTasksRequest,
    ) -> impl Stream<Item = Result<TaskInfo>> + Send + 'static {
        let client = self.clone();
        stream::try_unfold(Some(filter), move |next| {
            let client = client.clone();
            async move {
                let Some(filter) = next else {
                    return Ok::<_, Error>(None);
                };
                let page = client.tasks_page(filter.clone()).await?;
                let next = page.next_page_token.map(|page_token| ListTasksRequest {
                    page_token,
                    ..filter
                });
                Ok(Some((stream::iter(page.tasks.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
    }

    /// Queue lengths, overall and per engine.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// println!("{} waiting", client.queue_status().await?.unassigned);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn queue_status(&self) -> Result<QueueStatusReply> {
        rpc!(self, control, queue_status, QueueStatusRequest {})
    }

    /// Aborts tasks: queued ones never start, running ones are terminated.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let reply = client.abort(&[7, 8]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn abort(&self, task_ids: &[u64]) -> Result<AbortReply> {
        let request = AbortRequest {
            task_ids: task_ids.to_vec(),
        };
        rpc!(self, control, abort, request.clone())
    }

    /// Sends a signal (0 for SIGINT) to running tasks.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let reply = client.interrupt(&[7], 15).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn interrupt(&self, task_ids: &[u64], signal: i32) -> Result<InterruptReply> {
        let request = InterruptRequest {
            task_ids: task_ids.to_vec(),
            signal,
        };
        rpc!(self, control, interrupt, request.clone())
    }

    /// Tells engines to exit (all if `engine_ids` is empty); returns which were told.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let told = client.shutdown_engines(&[]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown_engines(&self, engine_ids: &[u32]) -> Result<Vec<u32>> {
        let request = ShutdownEnginesRequest {
            engine_ids: engine_ids.to_vec(),
        };
        let reply = rpc!(self, control, shutdown_engines, request.clone())?;
        Ok(reply.engine_ids)
    }

    /// Stops the hub, and its engines too if `engines` is set.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// client.shutdown(true).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self, engines: bool) -> Result<()> {
        rpc!(self, control, shutdown, ShutdownRequest { engines })?;
        Ok(())
    }

    /// Submits a job and returns its task ids at once.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let ids = client.submit(warren::Job::argv(["sleep", "60"]).all()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit(&self, job: impl Into<ExecuteRequest>) -> Result<Vec<u64>> {
        let request = job.into();
        let reply = rpc!(self, execution, submit, request.clone())?;
        Ok(reply.task_ids)
    }

    /// Submits a job and streams every event of its tasks until all have ended.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let events: Vec<_> = client.run(warren::Job::script("hostname").all()).await?.try_collect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(&self, job: impl Into<ExecuteRequest>) -> Result<Events> {
        let request = job.into();
        let inner = self.server_streaming(EXECUTE, request).await?;
        Ok(Events::new(RawEvents::new(inner, self.idle_limit)))
    }

    /// Calls the server-streaming method at `path` as the generated clients would, and
    /// answers with its messages read where they lie (see [`Received`]).
    pub(crate) async fn server_streaming<M, R>(
        &self,
        path: &'static str,
        request: M,
    ) -> Result<Received<R>>
    where
        M: prost::Message + Clone + Send + 'static,
        R: prost::Message + Default + Send + 'static,
    {
        self.call(|| {
            let mut channel = self.channel.clone();
            let request = request.clone();
            async move { call_server_streaming(&mut channel, path, request, MAX_MESSAGE).await }
        })
        .await
    }

    /// The signed channel every generated client here is built on.
    pub(crate) fn channel(&self) -> &SignedChannel {
        &self.channel
    }

    /// Replays a task's events from `from_seq`, then follows it until it ends.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let events = client.follow(7, 0).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn follow(&self, task_id: u64, from_seq: u64) -> Result<Events> {
        let request = StreamOutputRequest { task_id, from_seq };
        let inner = self.server_streaming(STREAM_OUTPUT, request).await?;
        Ok(Events::new(RawEvents::new(inner, self.idle_limit)))
    }

    /// Deletes finished tasks from the hub's history; returns how many and their kept bytes.
    ///
    /// ```no_run
    /// use warren::proto::purge_request::Selector;
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let reply = client.purge(Selector::AllFinished(true)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge(&self, selector: purge_request::Selector) -> Result<PurgeReply> {
        let request = PurgeRequest {
            selector: Some(selector),
        };
        rpc!(self, control, purge, request.clone())
    }
}
