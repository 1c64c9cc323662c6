//! Dialing a hub: gRPC over its Unix socket, and nothing else.

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::Service;

use crate::auth::Signer;
use crate::socket::QuietStream;

/// Flow-control windows large enough that streaming output is not held up by window updates.
pub const STREAM_WINDOW: u32 = 8 << 20;
/// The connection-wide window.
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// The largest HTTP/2 frame a peer may send us: more than an output chunk or a stdin piece
/// (1 MiB), so that one arrives in one frame and [`crate::passthrough::Received`] takes its
/// bytes from where h2 read them. (tonic's own decoder copies a message that came in one large
/// frame twice, once in and once as it reserves the message's length: every stream that
/// carries bulk bytes is read with `Received`.)
pub const MAX_FRAME: u32 = 2 << 20;

/// Connects to the hub's socket at `path`.
pub async fn connect_unix(path: &Path) -> Result<Channel, tonic::transport::Error> {
    endpoint()
        .connect_with_connector(connector(path.to_owned()))
        .await
}

fn endpoint() -> Endpoint {
    // The authority is a placeholder: the connector decides where the bytes go.
    Endpoint::from_static("http://localhost")
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
}

fn connector(
    path: PathBuf,
) -> impl Service<
    Uri,
    Response = TokioIo<QuietStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<QuietStream>>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            let stream = UnixStream::connect(&path).await?;
            check_peer(&stream, &path)?;
            Ok(TokioIo::new(QuietStream::from_tokio(stream)?))
        }
    })
}

/// Refuses a socket answered by a process that runs as neither this user nor root, as ssh
/// refuses an unknown host key: in a directory others can write to (a hand-made forward in
/// /tmp, say), another user could be listening there to capture calls and their signatures.
fn check_peer(stream: &UnixStream, path: &Path) -> std::io::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let peer = stream.peer_cred()?.uid();
    if peer == me || peer == 0 {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "REFUSED: the process answering on {} runs as uid {peer}, not as you (uid {me}) or \
             root, so it is not your hub and nothing was sent to it. Someone else may be \
             listening there to capture your calls: keep hub sockets and forwards in a \
             directory only you can enter (mode 0700), and remove this socket",
            path.display()
        ),
    ))
}

/// A channel that signs every call with the hub's key (see [`crate::auth`]).
///
/// Signing happens here, below the generated clients, because the signature covers the method
/// path, which a tonic interceptor can't see. A retried call passes through again and is
/// signed afresh.
#[derive(Clone, Debug)]
pub struct SignedChannel {
    inner: Channel,
    signer: Signer,
}

impl SignedChannel {
    /// Wraps `inner` so that every call carries a signature from `signer`.
    pub fn new(inner: Channel, signer: Signer) -> Self {
        Self { inner, signer }
    }

    /// The signer, for adjusting its clock.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

impl Service<http::Request<tonic::body::Body>> for SignedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = tonic::transport::channel::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // Marked sensitive: never indexed by HPACK (see `Signer::header_value`).
        if let Some(value) = self.signer.header_value(request.uri().path()) {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        self.inner.call(request)
    }
}
