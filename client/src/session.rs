//! Sessions: long-lived interpreters on engines, where what one cell defines is there for the
//! next. [`Client::open_session`] opens one and hands back a [`Session`]; its
//! [`Session::execute`] runs a cell and yields the cell's output as it comes and then its typed
//! [`CellResult`].

use warren_proto::transport::SignedChannel;
use warren_proto::v1::sessions_client::SessionsClient;
use warren_proto::v1::{
    CloseSessionsReply, CloseSessionsRequest, ExecuteRequest, GetSessionRequest,
    ListSessionsRequest, OpenSessionsRequest, RestartSessionRequest, SessionInfo, SessionKind,
    SessionSpec, SubmitCellsRequest,
};

use crate::placement::Placement;
use crate::{Cell, Client, Error, Job, Result};

/// Largest message the SDK sends or accepts (as for the other services).
const MAX_MESSAGE: usize = 64 << 20;

/// What sessions to open: the interpreter, where, and the group's name.
///
/// ```
/// let options = warren::SessionOptions::python().all().name("analysis").env("OMP_NUM_THREADS", "1");
/// let request = options.into_request();
/// assert_eq!(request.name, "analysis");
/// ```
#[derive(Clone, Debug)]
pub struct SessionOptions {
    spec: SessionSpec,
    placement: Placement,
    name: String,
}

impl SessionOptions {
    fn of(kind: SessionKind, argv: Vec<String>) -> Self {
        Self {
            spec: SessionSpec {
                kind: kind as i32,
                argv,
                ..SessionSpec::default()
            },
            placement: Placement::default(),
            name: String::new(),
        }
    }

    /// warren's Python driver, with the engine's `python3`.
    ///
    /// ```
    /// let options = warren::SessionOptions::python();
    /// ```
    pub fn python() -> Self {
        Self::of(SessionKind::Python, Vec::new())
    }

    /// warren's bash driver: variables, functions, `cd` and exports survive between cells.
    ///
    /// ```
    /// let options = warren::SessionOptions::bash();
    /// ```
    pub fn bash() -> Self {
        Self::of(SessionKind::Bash, Vec::new())
    }

    /// Any program that speaks warren's cell protocol (docs/cell-protocol.md).
    ///
    /// ```
    /// let options = warren::SessionOptions::custom(["/opt/adapters/r-cells", "--quiet"]);
    /// ```
    pub fn custom<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::of(
            SessionKind::Custom,
            argv.into_iter().map(Into::into).collect(),
        )
    }

    /// The interpreter to run instead of `python3` (or `bash`), with its options.
    ///
    /// ```
    /// let options = warren::SessionOptions::python().interpreter(["/usr/bin/python3.11", "-X", "dev"]);
    /// ```
    pub fn interpreter<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.argv = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for the interpreter.
    ///
    /// ```
    /// let options = warren::SessionOptions::python().env("OMP_NUM_THREADS", "1");
    /// ```
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.env.insert(name.into(), value.into());
        self
    }

    /// Starts the interpreter in this directory on the engine.
    ///
    /// ```
    /// let options = warren::SessionOptions::bash().cwd("/tmp");
    /// ```
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.spec.cwd = dir.into();
        self
    }

    /// Names the group (cells aimed at the group run in every one of its sessions).
    ///
    /// ```
    /// let options = warren::SessionOptions::python().all().name("analysis");
    /// ```
    pub fn name(mut self, group: impl Into<String>) -> Self {
        self.name = group.into();
        self
    }

    /// One session on every engine.
    ///
    /// ```
    /// let options = warren::SessionOptions::python().all();
    /// ```
    pub fn all(self) -> Self {
        self.place(Placement::all)
    }

    /// One session on the engine with the fewest (the default).
    ///
    /// ```
    /// let options = warren::SessionOptions::python().any();
    /// ```
    pub fn any(self) -> Self {
        self.place(Placement::any)
    }

    /// One session on each of these engines.
    ///
    /// ```
    /// let options = warren::SessionOptions::python().engines([1, 2]);
    /// ```
    pub fn engines(self, ids: impl IntoIterator<Item = u32>) -> Self {
        self.place(|p| p.engines(ids))
    }

    /// Only on engines with this label (with `all` or `any`).
    ///
    /// ```
    /// let options = warren::SessionOptions::python().all().on_engines_labelled("gpu", "yes");
    /// ```
    pub fn on_engines_labelled(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.place(|p| p.labelled(key.into(), value.into()))
    }

    fn place(mut self, change: impl FnOnce(&mut Placement)) -> Self {
        change(&mut self.placement);
        self
    }

    /// The request to send.
    ///
    /// ```
    /// let request = warren::SessionOptions::bash().into_request();
    /// assert!(request.spec.is_some());
    /// ```
    pub fn into_request(self) -> OpenSessionsRequest {
        OpenSessionsRequest {
            spec: Some(self.spec),
            targets: Some(self.placement.into_targets()),
            name: self.name,
        }
    }
}

/// One session: a live interpreter on one engine.
///
/// ```no_run
/// # async fn f(client: warren::Client) -> warren::Result<()> {
/// let session = client.open_session(warren::SessionOptions::python()).await?;
/// session.execute("x = 6 * 7").await?.result().await?;
/// let result = session.execute("x").await?.result().await?;
/// assert_eq!(result, warren::CellResult::Ok { value_repr: "42".into() });
/// session.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    client: Client,
    info: SessionInfo,
}

impl Session {
    /// Its id.
    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// The engine it lives on.
    pub fn engine_id(&self) -> u32 {
        self.info.engine_id
    }

    /// Its record, as last fetched ([`Session::refresh`] fetches it again).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Runs a cell: after the cells sent to this session before it, one at a time.
    pub async fn execute(&self, code: impl Into<String>) -> Result<Cell> {
        let request = Job::cell(code).sessions([self.info.id]).into_request();
        let events = self.client.run(request).await?;
        Ok(Cell::new(events))
    }

    /// Fetches its record again (its state, the cells not ended...).
    pub async fn refresh(&mut self) -> Result<&SessionInfo> {
        self.info = self.client.session(self.info.id).await?;
        Ok(&self.info)
    }

    /// Interrupts the cell running now (SIGINT: `KeyboardInterrupt` in Python); the
    /// session's state survives. Returns the cells signalled.
    pub async fn interrupt(&self) -> Result<Vec<u64>> {
        let info = self.client.session(self.info.id).await?;
        if info.cells.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.client.interrupt(&info.cells, 0).await?.signalled)
    }

    /// Starts a fresh interpreter under the same id: the old one's state is gone.
    pub async fn restart(&mut self) -> Result<&SessionInfo> {
        self.info = self.client.restart_session(self.info.id).await?;
        Ok(&self.info)
    }

    /// Closes it: its interpreter ends, and cells still queued end aborted.
    pub async fn close(self) -> Result<()> {
        self.client.close_sessions(&[self.info.id], "").await?;
        Ok(())
    }
}

impl Client {
    /// The generated `Sessions` client, signing every call.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> Result<(), tonic::Status> {
    /// let reply = client.sessions_client().list_sessions(warren::proto::ListSessionsRequest::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sessions_client(&self) -> SessionsClient<SignedChannel> {
        SessionsClient::new(self.channel().clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Opens sessions (one per engine the options select) as one group; answers once each
    /// interpreter is ready or has failed to start. Returns the group's name and sessions.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let (group, sessions) = client.open_sessions(warren::SessionOptions::python().all().name("analysis")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_sessions(&self, options: SessionOptions) -> Result<(String, Vec<Session>)> {
        let request = options.into_request();
        let reply = self
            .call(|| {
                let mut client = self.sessions_client();
                let request = request.clone();
                async move { client.open_sessions(request).await }
            })
            .await?;
        let sessions = reply
            .sessions
            .into_iter()
            .map(|info| Session {
                client: self.clone(),
                info,
            })
            .collect();
        Ok((reply.group, sessions))
    }

    /// Opens one session (on the engine the options select: `any` unless said otherwise);
    /// an error if it fails to start, saying why.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let session = client.open_session(warren::SessionOptions::bash()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_session(&self, options: SessionOptions) -> Result<Session> {
        let (_, mut sessions) = self.open_sessions(options).await?;
        if sessions.len() != 1 {
            return Err(Error::Session(format!(
                "the options selected {} engines; open_session opens one (use open_sessions for several)",
                sessions.len()
            )));
        }
        let session = sessions.remove(0);
        if !session.info.state().is_live() {
            let why = session.info.reason.clone();
            let _ = session.clone().close().await;
            return Err(Error::Session(format!(
                "session {} did not start: {why}",
                session.info.id
            )));
        }
        Ok(session)
    }

    /// One session's record.
    pub async fn session(&self, id: u64) -> Result<SessionInfo> {
        self.call(|| {
            let mut client = self.sessions_client();
            async move { client.get_session(GetSessionRequest { id }).await }
        })
        .await
    }

    /// The sessions not closed (of `group` only, if not empty; closed ones too if asked).
    pub async fn list_sessions(
        &self,
        group: &str,
        include_closed: bool,
    ) -> Result<Vec<SessionInfo>> {
        let request = ListSessionsRequest {
            group: group.to_owned(),
            include_closed,
        };
        let reply = self
            .call(|| {
                let mut client = self.sessions_client();
                let request = request.clone();
                async move { client.list_sessions(request).await }
            })
            .await?;
        Ok(reply.sessions)
    }

    /// Closes sessions: these ids, and every session of `group` if not empty.
    pub async fn close_sessions(&self, ids: &[u64], group: &str) -> Result<CloseSessionsReply> {
        let request = CloseSessionsRequest {
            ids: ids.to_vec(),
            group: group.to_owned(),
        };
        self.call(|| {
            let mut client = self.sessions_client();
            let request = request.clone();
            async move { client.close_sessions(request).await }
        })
        .await
    }

    /// Starts a fresh interpreter under a session's id; answers once it is ready or dead.
    pub async fn restart_session(&self, id: u64) -> Result<SessionInfo> {
        self.call(|| {
            let mut client = self.sessions_client();
            async move { client.restart_session(RestartSessionRequest { id }).await }
        })
        .await
    }

    /// Submits many cells in one call, in order; returns their task ids.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let cells = (0..100).map(|i| warren::Job::cell(format!("x = {i}")).group("g").into_request());
    /// let ids = client.submit_cells(cells.collect()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_cells(&self, requests: Vec<ExecuteRequest>) -> Result<Vec<u64>> {
        let request = SubmitCellsRequest { requests };
        let reply = self
            .call(|| {
                let mut client = self.sessions_client();
                let request = request.clone();
                async move { client.submit_cells(request).await }
            })
            .await?;
        Ok(reply.task_ids)
    }
}
