//! The cost of the HMAC layer: the same Control call through the hub's services signed and
//! checked, signed and not checked, and unsigned, served in one process the way the hub
//! serves (one thread).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnixListenerStream;
use warren_hub::InProcessHub;
use warren_proto::auth::{DEFAULT_SKEW, Key, Signer, Verifier};
use warren_proto::socket::QuietStream;
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::ListEnginesRequest;
use warren_proto::v1::control_client::ControlClient;

use crate::stats::Samples;

/// Serves Control on `signed.sock` (with the HMAC layer), `carried.sock` and `plain.sock`
/// (without it) from one thread, until the returned sender is dropped.
fn serve(dir: &Path, key: &Key) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Bound here, so that the sockets answer (queue connections) once this returns.
    let [signed, carried, plain] = SOCKETS.map(|name| {
        let listener = std::os::unix::net::UnixListener::bind(dir.join(name))?;
        listener.set_nonblocking(true)?;
        std::io::Result::Ok(listener)
    });
    let (signed, carried, plain) = (signed?, carried?, plain?);
    let verifier = Arc::new(Verifier::new(key, "bench", DEFAULT_SKEW, 4_000_000));
    std::thread::Builder::new()
        .name("bench-hub".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let hub = InProcessHub::new("bench")?;
                let listen = |listener| {
                    tokio::net::UnixListener::from_std(listener).map(|listener| {
                        UnixListenerStream::new(listener)
                            .map(|accepted| accepted.and_then(QuietStream::from_tokio))
                    })
                };
                let signed_server = hub.serve_control(listen(signed)?, Some(verifier));
                let carried_server = hub.serve_control(listen(carried)?, None);
                let plain_server = hub.serve_control(listen(plain)?, None);
                tokio::select! {
                    _ = signed_server => {}
                    _ = carried_server => {}
                    _ = plain_server => {}
                    _ = stopped => {}
                }
                anyhow::Ok(())
            })
        })?;
    Ok(stop)
}

/// The sockets [`serve`] answers on: checked, carried (signed calls, no check) and plain.
const SOCKETS: [&str; 3] = ["signed.sock", "carried.sock", "plain.sock"];

/// Round trips of one call three ways, so that the signature's cost splits in two.
pub(crate) struct Split {
    /// Signed and checked by the hub's layer: what every call pays.
    pub(crate) signed: Samples,
    /// Signed, with the header carried to a hub that does not check it: the client's share
    /// and the header's transport.
    pub(crate) carried: Samples,
    /// Neither signed nor checked: the baseline.
    pub(crate) plain: Samples,
}

/// Round trips of ListEngines, signed and checked, signed and not checked, and unsigned,
/// interleaved call by call so that noise falls on all three alike.
pub(crate) async fn compare(dir: &Path, runs: usize) -> anyhow::Result<Split> {
    let key = Key::generate()?;
    let _stop = serve(dir, &key)?;
    let signed_client = |socket: &'static str| {
        let key = key.clone();
        async move {
            let channel = SignedChannel::new(
                connect_unix(&dir.join(socket)).await?,
                Signer::new(&key, "bench"),
            );
            anyhow::Ok(ControlClient::new(channel))
        }
    };
    let mut signed = signed_client("signed.sock").await?;
    let mut carried = signed_client("carried.sock").await?;
    let mut plain = ControlClient::new(connect_unix(&dir.join("plain.sock")).await?);
    let mut took = [const { Vec::new() }; 3];
    let block = 100;
    for round in 0..(runs / block + 2) {
        for i in 0..block {
            let mut this = [Duration::ZERO; 3];
            // Rotate which goes first, so none always pays for another's wake-up.
            for step in 0..3 {
                let which = (i + step) % 3;
                let start = Instant::now();
                match which {
                    0 => drop(signed.list_engines(ListEnginesRequest {}).await?),
                    1 => drop(carried.list_engines(ListEnginesRequest {}).await?),
                    _ => drop(plain.list_engines(ListEnginesRequest {}).await?),
                }
                this[which] = start.elapsed();
            }
            // The first two blocks warm up.
            if round >= 2 {
                for (all, one) in took.iter_mut().zip(this) {
                    all.push(one);
                }
            }
        }
    }
    let [signed, carried, plain] = took.map(Samples::new);
    Ok(Split {
        signed,
        carried,
        plain,
    })
}
