//! The cost of the HMAC layer: the same Control call through the hub's services with and
//! without the signature check, served in one process the way the hub serves (one thread).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use warren_hub::InProcessHub;
use warren_proto::auth::{DEFAULT_SKEW, Key, Signer, Verifier};
use warren_proto::transport::{SignedChannel, connect_unix};
use warren_proto::v1::ListEnginesRequest;
use warren_proto::v1::control_client::ControlClient;

use crate::stats::Samples;

/// Serves Control on `signed.sock` (with the HMAC layer) and `plain.sock` (without) from one
/// thread, until the returned sender is dropped.
fn serve(dir: &Path, key: &Key) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (signed_path, plain_path) = (dir.join("signed.sock"), dir.join("plain.sock"));
    let verifier = Arc::new(Verifier::new(key, "bench", DEFAULT_SKEW, 4_000_000));
    std::thread::Builder::new()
        .name("bench-hub".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let hub = InProcessHub::new("bench")?;
                let signed = UnixListenerStream::new(UnixListener::bind(&signed_path)?);
                let plain = UnixListenerStream::new(UnixListener::bind(&plain_path)?);
                let signed_server = hub.serve_control(signed, Some(verifier));
                let plain_server = hub.serve_control(plain, None);
                tokio::select! {
                    _ = signed_server => {}
                    _ = plain_server => {}
                    _ = stopped => {}
                }
                anyhow::Ok(())
            })
        })?;
    Ok(stop)
}

/// Round trips of ListEngines, signed and unsigned, interleaved in blocks so that noise falls
/// on both alike.
pub(crate) async fn compare(dir: &Path, runs: usize) -> anyhow::Result<(Samples, Samples)> {
    let key = Key::generate()?;
    let _stop = serve(dir, &key)?;
    let wait = Instant::now() + Duration::from_secs(10);
    while !(dir.join("signed.sock").exists() && dir.join("plain.sock").exists()) {
        anyhow::ensure!(
            Instant::now() < wait,
            "the in-process servers did not start"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let signed_channel = SignedChannel::new(
        connect_unix(&dir.join("signed.sock")).await?,
        Signer::new(&key, "bench"),
    );
    let mut signed = ControlClient::new(signed_channel);
    let mut plain = ControlClient::new(connect_unix(&dir.join("plain.sock")).await?);
    let (mut with, mut without) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let block = 100;
    for round in 0..(runs / block + 2) {
        // Alternate which goes first, so neither always pays for the other's wake-up.
        for i in 0..block {
            let (mut took, mut plain_took) = (Duration::ZERO, Duration::ZERO);
            for first in [i % 2 == 0, i % 2 != 0] {
                let start = Instant::now();
                if first {
                    signed.list_engines(ListEnginesRequest {}).await?;
                    took = start.elapsed();
                } else {
                    plain.list_engines(ListEnginesRequest {}).await?;
                    plain_took = start.elapsed();
                }
            }
            // The first two blocks warm up.
            if round >= 2 {
                with.push(took);
                without.push(plain_took);
            }
        }
    }
    Ok((Samples::new(with), Samples::new(without)))
}
