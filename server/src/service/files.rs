//! `warren.v1.Files`: copies relayed between a client and engines, a window at a time (see
//! `state::transfers` for the flow control).

use futures_util::Stream;
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

use super::record_ids;
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
        let mut inbound = request.into_inner();
        let start = match inbound.message().await? {
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
        let mut legs: Vec<Result<UploadLeg, CopyResult>> = upload.legs;
        let engines: Vec<u32> = legs
            .iter()
            .filter_map(|l| l.as_ref().ok())
            .map(|l| l.engine_id)
            .collect();
        record_ids("engines", &engines);
        let window = self.hub.settings().limits.copy_window;
        relay_upload(&mut inbound, &mut legs, window).await?;
        let mut results = Vec::with_capacity(legs.len());
        for leg in legs {
            results.push(match leg {
                Err(refused) => refused,
                Ok(leg) => outcome(leg).await,
            });
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

/// Passes the client's items on to every engine still copying, each within its window;
/// closes the engines' parts when the client has sent everything. Returns early (and the
/// legs, dropped, cancel their engines' parts) if the client goes away.
async fn relay_upload(
    inbound: &mut Streaming<UploadRequest>,
    legs: &mut [Result<UploadLeg, CopyResult>],
    window: u64,
) -> Result<(), Status> {
    // An item larger than the window waits for all of it.
    let most = window.min(u64::from(u32::MAX)) as u32;
    loop {
        if legs
            .iter()
            .all(|leg| leg.as_ref().is_ok_and(|l| l.credit.is_closed()) || leg.is_err())
        {
            // Every engine has ended its part (refused, or failed): reading on is pointless.
            return Ok(());
        }
        let item: CopyItem = match inbound.message().await {
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
        for leg in legs.iter_mut().filter_map(|leg| leg.as_mut().ok()) {
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
    for leg in legs.iter().filter_map(|leg| leg.as_ref().ok()) {
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

/// Waits for an engine's outcome.
async fn outcome(leg: UploadLeg) -> CopyResult {
    let UploadLeg {
        engine_id,
        outcome,
        guard,
        ..
    } = leg;
    let result = outcome.await.unwrap_or_else(|_| CopyResult {
        engine_id,
        code: Code::Unavailable as i32,
        message: "the copy ended without a word from the engine; copy again".into(),
        summary: None,
    });
    drop(guard);
    result
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
