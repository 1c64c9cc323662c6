//! `warren.v1.Files`: copies relayed between a client and engines, a window at a time (see
//! `state::transfers` for the flow control).

use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tonic::{Code, Request, Response, Status, Streaming};
use warren_proto::v1::files_server::Files;
use warren_proto::v1::{
    CopyItem, CopyResult, DownloadReply, DownloadRequest, FileClose, FileCredit, FileData,
    HubMessage, UploadReply, UploadRequest, download_reply, hub_message, upload_request,
};

use super::{Inbound, next_message, record_ids};
use crate::error::HubError;
use crate::state::{DownloadLeg, Hub, UploadLeg};

/// Credit for a download is given back to the engine once this much is owed, or whenever
/// the client has taken everything there was.
const CREDIT_BATCH: u64 = 64 * 1024;

/// Serves `warren.v1.Files`.
#[derive(Debug, Clone)]
pub(crate) struct FilesService {
    hub: Arc<Hub>,
}

impl FilesService {
    /// The service over this hub.
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl Files for FilesService {
    type DownloadStream = Relay;

    async fn upload(
        &self,
        request: Request<Streaming<UploadRequest>>,
    ) -> Result<Response<UploadReply>, Status> {
        self.upload_from(request.into_inner()).await
    }

    async fn download(
        &self,
        request: Request<DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let request = request.into_inner();
        record_ids("engine", &request.engine_id);
        let leg = self.hub.open_download(&request)?;
        Ok(Response::new(Relay {
            leg,
            owed: 0,
            ended: false,
        }))
    }
}

impl FilesService {
    /// Serves an upload: where the files go, then the files, relayed to the engines.
    pub(crate) async fn upload_from(
        &self,
        mut inbound: impl Inbound<UploadRequest>,
    ) -> Result<Response<UploadReply>, Status> {
        let start = match next_message(&mut inbound).await? {
            Some(UploadRequest {
                kind: Some(upload_request::Kind::Start(start)),
            }) => start,
            _ => {
                return Err(HubError::invalid(
                    "an upload's first message must be an UploadStart saying where the files go",
                )
                .into());
            }
        };
        let upload = self.hub.open_upload(&start)?;
        let mut parts: Vec<Part> = upload.legs.into_iter().map(Part::new).collect();
        let engines: Vec<u32> = parts
            .iter()
            .filter_map(|p| p.leg.as_ref())
            .map(|l| l.engine_id)
            .collect();
        record_ids("engines", &engines);
        let window = self.hub.settings().limits.copy_window;
        relay_upload(&mut inbound, &mut parts, window).await?;
        let mut results = Vec::with_capacity(parts.len());
        for mut part in parts {
            std::future::poll_fn(|cx| part.poll_outcome(cx)).await;
            results.extend(part.result);
        }
        match results.as_slice() {
            [only] if !start.all && only.code != 0 => Err(HubError::Copy {
                engine: only.engine_id,
                code: Code::from(only.code),
                message: only.message.clone(),
            }
            .into()),
            _ => Ok(Response::new(UploadReply { results })),
        }
    }
}

/// One engine's part of an upload: its leg (none if it refused at once) and its outcome
/// once known.
struct Part {
    leg: Option<UploadLeg>,
    result: Option<CopyResult>,
}

impl Part {
    fn new(leg: Result<UploadLeg, CopyResult>) -> Self {
        match leg {
            Ok(leg) => Self {
                leg: Some(leg),
                result: None,
            },
            Err(refused) => Self {
                leg: None,
                result: Some(refused),
            },
        }
    }

    /// The leg, while the engine's part goes on.
    fn live(&mut self) -> Option<&mut UploadLeg> {
        self.leg.as_mut().filter(|_| self.result.is_none())
    }

    /// Ready once the engine's outcome is known.
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(leg) = self.live() {
            let Poll::Ready(outcome) = Pin::new(&mut leg.outcome).poll(cx) else {
                return Poll::Pending;
            };
            let engine_id = leg.engine_id;
            self.result = Some(outcome.unwrap_or_else(|_| CopyResult {
                engine_id,
                code: Code::Unavailable as i32,
                message: "the copy ended without a word from the engine; copy again".into(),
                summary: None,
            }));
        }
        Poll::Ready(())
    }
}

/// Ready once every engine's outcome is known (each refused, failed or done).
async fn all_ended(parts: &mut [Part]) {
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for part in parts.iter_mut() {
            pending |= part.poll_outcome(cx).is_pending();
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// Passes the client's items on to every engine still copying, each within its window;
/// closes the engines' parts when the client has sent everything. Returns early once every
/// engine's part has ended (reading on would be pointless), or with the client's error if it
/// went away (the legs, dropped, then cancel their engines' parts).
async fn relay_upload(
    inbound: &mut impl Inbound<UploadRequest>,
    parts: &mut [Part],
    window: u64,
) -> Result<(), Status> {
    // An item larger than the window waits for all of it.
    let most = window.min(u64::from(u32::MAX)) as u32;
    loop {
        let next = tokio::select! {
            next = next_message(inbound) => next,
            () = all_ended(parts) => return Ok(()),
        };
        let item: CopyItem = match next {
            Ok(Some(UploadRequest {
                kind: Some(upload_request::Kind::Item(item)),
            })) => item,
            Ok(Some(_)) => {
                return Err(HubError::invalid(
                    "an upload sends one UploadStart, then only CopyItems",
                )
                .into());
            }
            Ok(None) => break,
            Err(status) => {
                tracing::info!(%status, "the client gave up the upload");
                return Err(status);
            }
        };
        let cost = prost::Message::encoded_len(&item).min(most as usize) as u32;
        for leg in parts.iter_mut().filter_map(Part::live) {
            // Closed: the engine's part has ended (its outcome is waiting).
            if let Ok(permit) = leg.credit.acquire_many(cost).await {
                permit.forget();
                send(
                    &leg.tx,
                    hub_message::Kind::FileData(FileData {
                        transfer_id: leg.transfer_id,
                        item: Some(item.clone()),
                    }),
                );
            }
        }
    }
    for leg in parts.iter_mut().filter_map(Part::live) {
        send(
            &leg.tx,
            hub_message::Kind::FileClose(FileClose {
                transfer_id: leg.transfer_id,
                cancel: false,
            }),
        );
    }
    Ok(())
}

fn send(tx: &crate::state::EngineTx, kind: hub_message::Kind) {
    let _ = tx.send(HubMessage { kind: Some(kind) });
}

/// A download's items on their way to the client: each one taken gives its cost back to the
/// engine as credit.
pub(crate) struct Relay {
    leg: DownloadLeg,
    /// Credit taken by the client and not yet given back.
    owed: u64,
    ended: bool,
}

impl Relay {
    fn give_credit(&mut self) {
        if self.owed > 0 {
            send(
                &self.leg.tx,
                hub_message::Kind::FileCredit(FileCredit {
                    transfer_id: self.leg.transfer_id,
                    bytes: std::mem::take(&mut self.owed),
                }),
            );
        }
    }
}

impl Stream for Relay {
    type Item = Result<DownloadReply, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.leg.items.poll_recv(cx) {
            Poll::Ready(Some(Ok(reply))) => {
                if let Some(download_reply::Kind::Item(item)) = &reply.kind {
                    let cost = prost::Message::encoded_len(item) as u64;
                    self.leg.held.fetch_sub(cost, Ordering::Relaxed);
                    self.owed += cost;
                    if self.owed >= CREDIT_BATCH {
                        self.give_credit();
                    }
                } else {
                    self.ended = true;
                }
                Poll::Ready(Some(Ok(reply)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.ended = true;
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(Status::unavailable(
                    "the copy ended without a word from the engine; copy again",
                ))))
            }
            Poll::Pending => {
                self.give_credit();
                Poll::Pending
            }
        }
    }
}
