//! Saying goodbye: an engine that is leaving for good tells the hub, so the hub marks it gone
//! at once instead of waiting the liveness timeout for it to come back.
//!
//! A signal (SIGTERM from Slurm's `scancel` or time limit, SIGINT, SIGHUP) makes the engine
//! say goodbye *before* it stops its tasks: the hub settles them as lost with their engine
//! (retried elsewhere when their request allows), as it would for an engine that died, and
//! ignores what the engine says about them afterwards. An engine the hub told to stop says
//! goodbye after its tasks' ends reached the hub. Either way the hub then closes the stream,
//! and the engine waits for that (briefly), so the goodbye is not lost to a reset stream.

use std::time::Duration;
use tokio::sync::mpsc;
use warren_proto::passthrough::Received;
use warren_proto::v1::{EngineMessage, Goodbye, HubMessage, engine_message};

/// How long the engine waits for the hub to close the stream after its goodbye.
pub const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// Sends the goodbye and waits, at most [`GOODBYE_WAIT`], for the hub to end the stream;
/// whatever else the hub sends meanwhile is dropped. Returns whether the hub closed it.
pub async fn say(
    out: &mpsc::Sender<EngineMessage>,
    inbound: &mut Received<HubMessage>,
    reason: &str,
) -> bool {
    let goodbye = EngineMessage {
        kind: Some(engine_message::Kind::Goodbye(Goodbye {
            reason: reason.to_owned(),
        })),
    };
    let exchange = async {
        if out.send(goodbye).await.is_err() {
            return false;
        }
        loop {
            match inbound.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };
    let closed = tokio::time::timeout(GOODBYE_WAIT, exchange)
        .await
        .unwrap_or(false);
    if closed {
        tracing::info!(%reason, "said goodbye to the hub");
    } else {
        tracing::warn!(%reason, "the hub did not confirm the goodbye; it will notice the engine is gone");
    }
    closed
}
