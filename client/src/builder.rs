//! [`ClientBuilder`]: where the hub is, how to sign for it, and how long to wait.

use std::path::PathBuf;
use std::time::Duration;
use warren_proto::auth::Signer;
use warren_proto::connection;
use warren_proto::locate::{LocateError, Locator};

use crate::{Client, Error, Result};

/// How long a unary call may take by default.
///
/// ```
/// assert_eq!(warren::DEFAULT_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The first and the longest wait between attempts of [`Client::reconnect`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How to reach a hub: the settings of a [`Client`], then [`ClientBuilder::connect`].
///
/// The hub is found by the one rule every warren program shares
/// ([`Locator`](warren_proto::locate::Locator)): a tunnel's name, else a connection file,
/// else a socket and a key file, else the connection file beside the socket, else the default
/// one (`$XDG_RUNTIME_DIR/warren/hub.json`).
///
/// ```no_run
/// use std::time::Duration;
/// # async fn f() -> warren::Result<()> {
/// let client = warren::ClientBuilder::new()
///     .socket("/run/user/1000/warren/hub.sock")
///     .key_file("/home/me/.config/warren/key")
///     .timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    locator: Locator,
    signer: Option<Signer>,
    timeout: Duration,
    reconnect: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// Nothing given yet: the default connection file, the default deadline
    /// ([`DEFAULT_TIMEOUT`]), one attempt to reconnect.
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new();
    /// ```
    pub fn new() -> Self {
        Self {
            locator: Locator::default(),
            signer: None,
            timeout: DEFAULT_TIMEOUT,
            reconnect: Duration::ZERO,
        }
    }

    /// The hub the environment names: `WARREN_REMOTE`, `WARREN_CONNECTION_FILE`,
    /// `WARREN_SOCKET`, `WARREN_KEY_FILE` (see [`Locator::from_env`]), else the default
    /// connection file.
    ///
    /// ```no_run
    /// # async fn f() -> warren::Result<()> {
    /// let client = warren::ClientBuilder::from_env().connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_env() -> Self {
        Self::new().locator(Locator::from_env())
    }

    /// Finds the hub by this rule (flags a program parsed, say) instead.
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().locator(Default::default());
    /// ```
    pub fn locator(mut self, locator: Locator) -> Self {
        self.locator = locator;
        self
    }

    /// Reads this connection file (the hub writes it beside its socket, mode 0600).
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().connection_file("/tmp/warren-1000/hub.json");
    /// ```
    pub fn connection_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.locator.connection_file = Some(path.into());
        self
    }

    /// Dials this socket (with a connection file: instead of the file's, e.g. the local end of
    /// an ssh forward).
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().socket("/tmp/forward.sock");
    /// ```
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.locator.socket = Some(path.into());
        self
    }

    /// Signs with the key in this file (mode 0600). Without a connection file, the hub's id
    /// (new at each of its starts) is learned from its first answer.
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().socket("/tmp/hub.sock").key_file("/tmp/key");
    /// ```
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.locator.key_file = Some(path.into());
        self
    }

    /// Uses the hub reached through the `warren tunnel` called `name`.
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().remote("lab");
    /// ```
    pub fn remote(mut self, name: impl Into<String>) -> Self {
        self.locator.remote = Some(name.into());
        self
    }

    /// Signs with this signer instead of a key from a file; the socket is the one given with
    /// [`ClientBuilder::socket`], else the default.
    ///
    /// ```
    /// use warren_proto::auth::{Key, Signer};
    /// let key = Key::generate().unwrap();
    /// let builder = warren::ClientBuilder::new()
    ///     .socket("/tmp/hub.sock")
    ///     .signer(Signer::new(&key, ""));
    /// ```
    pub fn signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The deadline of every unary call (default [`DEFAULT_TIMEOUT`]).
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long [`Client::reconnect`] keeps trying, with backoff, to find the hub again
    /// (default: zero, one attempt).
    ///
    /// ```
    /// let builder = warren::ClientBuilder::new().reconnect(std::time::Duration::from_secs(60));
    /// ```
    pub fn reconnect(mut self, limit: Duration) -> Self {
        self.reconnect = limit;
        self
    }

    /// Finds the hub (reading its files afresh), connects, and checks that the hub accepts
    /// the key and speaks this protocol.
    ///
    /// ```no_run
    /// # async fn f() -> warren::Result<()> {
    /// let client = warren::ClientBuilder::new().remote("lab").connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(&self) -> Result<Client> {
        let (socket, signer) = self.resolve()?;
        Client::dial(&socket, signer, self.clone()).await
    }

    /// The deadline of unary calls.
    pub(crate) fn timeout_setting(&self) -> Duration {
        self.timeout
    }

    /// Where the hub is and how to sign for it.
    fn resolve(&self) -> Result<(PathBuf, Signer)> {
        if let Some(signer) = &self.signer {
            let socket = self
                .locator
                .socket
                .clone()
                .unwrap_or_else(connection::default_socket);
            return Ok((socket, signer.clone()));
        }
        let info = self.locator.resolve().map_err(|err| match err {
            LocateError::ConnectionFile { path, error } => Error::ConnectionFile {
                path,
                source: error,
            },
            LocateError::Key(err) => Error::Key(err),
            other => Error::Locate(other),
        })?;
        let signer = info.signer()?;
        Ok((info.socket, signer))
    }

    /// Connects again and again, with backoff, until it works or [`ClientBuilder::reconnect`]
    /// has passed; the last error then.
    pub(crate) async fn reconnect_now(&self) -> Result<Client> {
        let deadline = tokio::time::Instant::now() + self.reconnect;
        let mut delay = FIRST_BACKOFF;
        loop {
            match self.connect().await {
                Ok(client) => return Ok(client),
                Err(err) if tokio::time::Instant::now() + delay > deadline => return Err(err),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
