//! `Execution.Interact`: submit, follow, and carry the client's stdin to the tasks as it
//! comes (see `state::stdin` for the window and what the engines are sent).

use std::sync::Arc;
use tokio::sync::Notify;
use tonic::Status;
use warren_proto::v1::{InteractRequest, interact_request::Kind};

use super::{Inbound, next_message};
use crate::error::HubError;
use crate::state::{Hub, StdinEnd};

/// Reads the first message of an Interact call: the request.
pub(super) async fn start(
    inbound: &mut impl Inbound<InteractRequest>,
) -> Result<warren_proto::v1::ExecuteRequest, Status> {
    match next_message(inbound).await? {
        Some(InteractRequest {
            kind: Some(Kind::Start(start)),
        }) => Ok(start),
        _ => Err(HubError::invalid(
            "the first message of Interact must be `start`, the request to run; stdin follows it",
        )
        .into()),
    }
}

/// Carries the rest of the call to the tasks `ids` until the client ends it: stdin bytes
/// (read only as fast as the tasks' windows allow), its end, and the terminal's size. A client
/// that goes away without ending its stdin hangs up (`StdinEnd::Hangup`).
pub(super) fn carry(
    hub: &Arc<Hub>,
    ids: Vec<u64>,
    room: Arc<Notify>,
    mut inbound: impl Inbound<InteractRequest>,
) {
    let span = tracing::info_span!("interact", tasks = ?ids);
    let worker = hub.clone();
    hub.background().spawn(span, async move {
        let hub = worker;
        let end = loop {
            let message = match next_message(&mut inbound).await {
                Ok(Some(message)) => message,
                // The client closed its side: the end of its stdin, if it had not said so.
                Ok(None) => break StdinEnd::Eof,
                Err(status) => {
                    tracing::debug!(%status, "the client's stream broke");
                    break StdinEnd::Hangup;
                }
            };
            match message.kind {
                Some(Kind::Stdin(data)) if !data.is_empty() => {
                    // Once no task takes stdin the bytes go nowhere; the call goes on (for
                    // resizes) until the client ends it.
                    hub.push_stdin(&ids, &room, data).await;
                }
                Some(Kind::Eof(true)) => hub.end_stdin(&ids, StdinEnd::Eof),
                Some(Kind::Resize(size)) => hub.resize_stdin(&ids, size),
                Some(Kind::Start(_)) => {
                    tracing::debug!("a second `start` on Interact; hanging up");
                    break StdinEnd::Hangup;
                }
                _ => {}
            }
        };
        // A no-op for tasks whose stdin has already ended.
        hub.end_stdin(&ids, end);
    });
}
