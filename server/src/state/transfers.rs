//! File copies relayed between clients and engines (`warren.v1.Files`, `warren cp`).
//!
//! The hub never holds a file: each transfer has a window of `--copy-window` bytes (of
//! encoded items) between the hub and its engine. An upload's relay (`service::files`) takes
//! credit before it sends an item to the engine, and the engine gives credit back as it
//! writes; it reads the client's next message only then, so HTTP/2's window holds the client
//! back. A download's engine sends only within its credit, and the relay gives credit back as
//! the client's stream takes items. What an engine says about a transfer arrives on its
//! registration stream and is handled here, under the hub's lock, without waiting: credit is
//! added, items are queued (never past the window), outcomes are handed over. An engine that
//! leaves fails its transfers; a relay that ends early (its client gone) cancels its transfer
//! on the engine through its [`TransferGuard`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tonic::Code;
use warren_proto::v1::{
    CopyResult, DownloadReply, DownloadRequest, FileClose, FileOpen, UploadStart, download_reply,
    engine_message, file_open, hub_message,
};

use super::registry::EngineTx;
use super::{Hub, State};
use crate::error::HubError;
use crate::validate;

/// What a download's relay receives: the engine's items, then its summary or failure.
pub(crate) type DownloadItem = Result<DownloadReply, HubError>;

/// The transfers under way.
#[derive(Debug)]
pub(crate) struct Transfers {
    last_id: u64,
    open: HashMap<u64, Transfer>,
    /// One permit per copy call relayed at once (`--max-copies`).
    calls: Arc<Semaphore>,
}

impl Transfers {
    /// No transfers; at most `max_copies` calls at once.
    pub(crate) fn new(max_copies: usize) -> Self {
        Self {
            last_id: 0,
            open: HashMap::new(),
            calls: Arc::new(Semaphore::new(max_copies.min(Semaphore::MAX_PERMITS))),
        }
    }
}

/// One engine's part of a copy.
#[derive(Debug)]
struct Transfer {
    engine_id: u32,
    connection: u64,
    leg: Leg,
}

#[derive(Debug)]
enum Leg {
    Upload {
        /// Bytes the relay may still send the engine.
        credit: Arc<Semaphore>,
        outcome: oneshot::Sender<CopyResult>,
    },
    Download {
        items: mpsc::UnboundedSender<DownloadItem>,
        /// Bytes received from the engine and not yet taken by the client.
        held: Arc<AtomicU64>,
    },
}

/// Cancels its transfer on the engine when dropped before the transfer ended.
#[derive(Debug)]
pub(crate) struct TransferGuard {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.hub.update(|state| {
            let Some(transfer) = state.transfers.open.remove(&self.id) else {
                return;
            };
            tracing::info!(
                transfer = self.id,
                engine = transfer.engine_id,
                "copy given up"
            );
            if let Some(engine) = state
                .engines
                .current(transfer.engine_id, transfer.connection)
            {
                engine.send(hub_message::Kind::FileClose(FileClose {
                    transfer_id: self.id,
                    cancel: true,
                }));
            }
        });
    }
}

/// An upload to one engine, as its relay drives it.
#[derive(Debug)]
pub(crate) struct UploadLeg {
    /// The engine.
    pub(crate) engine_id: u32,
    /// The transfer's id on the engine's stream.
    pub(crate) transfer_id: u64,
    /// Bytes that may be sent now; closed once the engine's part has ended.
    pub(crate) credit: Arc<Semaphore>,
    /// The engine's outcome.
    pub(crate) outcome: oneshot::Receiver<CopyResult>,
    /// The engine's stream.
    pub(crate) tx: EngineTx,
    /// Cancels the engine's part if the relay drops the leg unfinished.
    pub(crate) _guard: TransferGuard,
}

/// A download from one engine, as its relay drives it.
#[derive(Debug)]
pub(crate) struct DownloadLeg {
    /// The transfer's id on the engine's stream.
    pub(crate) transfer_id: u64,
    /// The engine's items, then its outcome.
    pub(crate) items: mpsc::UnboundedReceiver<DownloadItem>,
    /// Bytes held for the client; the relay takes off what the client took.
    pub(crate) held: Arc<AtomicU64>,
    /// The engine's stream, for credit.
    pub(crate) tx: EngineTx,
    /// Cancels the engine's part if the client goes away.
    pub(crate) _guard: TransferGuard,
    /// The call's place among `--max-copies`.
    pub(crate) _call: OwnedSemaphorePermit,
}

/// Where an upload goes: a leg per engine that takes files, and the refusals of those that
/// don't (with `all`), in engine order.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The engines' legs or refusals.
    pub(crate) legs: Vec<Result<UploadLeg, CopyResult>>,
    /// The call's place among `--max-copies`.
    pub(crate) _call: OwnedSemaphorePermit,
}

impl Hub {
    /// Opens an upload's transfers: to the one engine named (refused if it takes no files),
    /// or to every engine.
    pub(crate) fn open_upload(self: &Arc<Self>, start: &UploadStart) -> Result<Upload, HubError> {
        validate::copy_path(&start.path)?;
        let window = self.settings.limits.copy_window;
        self.update(|state| {
            let call = state.copy_call()?;
            let ids = if start.all {
                let ids = state.engines.ids();
                if ids.is_empty() {
                    return Err(HubError::Precondition(
                        "no engine is registered to copy to; start one, then copy again".into(),
                    ));
                }
                ids
            } else {
                state.takes_files(start.engine_id)?;
                vec![start.engine_id]
            };
            let mut legs = Vec::new();
            for engine_id in ids {
                if let Err(refused) = state.takes_files(engine_id) {
                    legs.push(Err(CopyResult {
                        engine_id,
                        code: Code::FailedPrecondition as i32,
                        message: refused.to_string(),
                        summary: None,
                    }));
                    continue;
                }
                let credit = Arc::new(Semaphore::new(window as usize));
                let (outcome_tx, outcome) = oneshot::channel();
                let leg = Leg::Upload {
                    credit: credit.clone(),
                    outcome: outcome_tx,
                };
                let (transfer_id, tx) =
                    state.open_transfer(engine_id, leg, file_open::Kind::Upload(start.clone()))?;
                legs.push(Ok(UploadLeg {
                    engine_id,
                    transfer_id,
                    credit,
                    outcome,
                    tx,
                    _guard: TransferGuard {
                        hub: self.clone(),
                        id: transfer_id,
                    },
                }));
            }
            Ok(Upload { legs, _call: call })
        })
    }

    /// Opens a download's transfer from one engine.
    pub(crate) fn open_download(
        self: &Arc<Self>,
        request: &DownloadRequest,
    ) -> Result<DownloadLeg, HubError> {
        validate::copy_path(&request.path)?;
        self.update(|state| {
            let call = state.copy_call()?;
            state.takes_files(request.engine_id)?;
            let (items_tx, items) = mpsc::unbounded_channel();
            let held = Arc::new(AtomicU64::new(0));
            let leg = Leg::Download {
                items: items_tx,
                held: held.clone(),
            };
            let (transfer_id, tx) = state.open_transfer(
                request.engine_id,
                leg,
                file_open::Kind::Download(request.clone()),
            )?;
            Ok(DownloadLeg {
                transfer_id,
                items,
                held,
                tx,
                _guard: TransferGuard {
                    hub: self.clone(),
                    id: transfer_id,
                },
                _call: call,
            })
        })
    }
}

impl State {
    /// A place among `--max-copies`, or a refusal that says so.
    fn copy_call(&self) -> Result<OwnedSemaphorePermit, HubError> {
        if !self.accepting {
            return Err(HubError::Stopping);
        }
        self.transfers
            .calls
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                HubError::exhausted(format!(
                    "the hub already relays {} copies (--max-copies); wait for one to end",
                    self.settings.limits.max_copies
                ))
            })
    }

    /// Refuses an engine that is not registered or takes no files.
    fn takes_files(&self, engine_id: u32) -> Result<(), HubError> {
        match self.engines.get(engine_id) {
            None => Err(HubError::UnknownEngine(engine_id)),
            Some(engine) if !engine.hello.files => Err(HubError::NoFiles(engine_id)),
            Some(_) => Ok(()),
        }
    }

    /// Registers a transfer and tells the engine to begin it.
    fn open_transfer(
        &mut self,
        engine_id: u32,
        leg: Leg,
        kind: file_open::Kind,
    ) -> Result<(u64, EngineTx), HubError> {
        let engine = self
            .engines
            .get(engine_id)
            .ok_or(HubError::UnknownEngine(engine_id))?;
        self.transfers.last_id += 1;
        let id = self.transfers.last_id;
        tracing::info!(transfer = id, engine = engine_id, "copy started");
        engine.send(hub_message::Kind::FileOpen(FileOpen {
            transfer_id: id,
            kind: Some(kind),
            window: self.settings.limits.copy_window,
        }));
        let transfer = Transfer {
            engine_id,
            connection: engine.connection,
            leg,
        };
        let tx = engine.sender();
        self.transfers.open.insert(id, transfer);
        Ok((id, tx))
    }

    /// What an engine says about one of its transfers.
    pub(super) fn transfer_message(
        &mut self,
        engine_id: u32,
        connection: u64,
        message: engine_message::Kind,
    ) {
        let window = self.settings.limits.copy_window;
        let id = match &message {
            engine_message::Kind::FileData(data) => data.transfer_id,
            engine_message::Kind::FileCredit(credit) => credit.transfer_id,
            engine_message::Kind::FileDone(done) => done.transfer_id,
            _ => return,
        };
        let ours = self
            .transfers
            .open
            .get(&id)
            .is_some_and(|t| t.engine_id == engine_id && t.connection == connection);
        if !ours {
            tracing::debug!(
                transfer = id,
                engine = engine_id,
                "news of a transfer not open"
            );
            return;
        }
        let leg = self.transfers.open.get(&id).map(|t| &t.leg);
        match (message, leg) {
            (engine_message::Kind::FileCredit(credit), Some(Leg::Upload { credit: room, .. })) => {
                let free = (window as usize).saturating_sub(room.available_permits());
                room.add_permits((credit.bytes as usize).min(free));
            }
            (engine_message::Kind::FileData(data), Some(Leg::Download { items, held })) => {
                let Some(item) = data.item else { return };
                let cost = prost::Message::encoded_len(&item) as u64;
                // The engine keeps to the window; a little slack for credit in flight.
                if held.fetch_add(cost, Ordering::Relaxed) + cost <= window + window / 2 {
                    let reply = DownloadReply {
                        kind: Some(download_reply::Kind::Item(item)),
                    };
                    let _ = items.send(Ok(reply));
                    return;
                }
                let message = "the engine sent more than the copy window allows; copy again";
                let failure = engine_failure(engine_id, Code::Internal, message.into());
                self.end_transfer(id, failure);
            }
            (engine_message::Kind::FileDone(done), Some(_)) => {
                let mut result = done.result.unwrap_or_default();
                result.engine_id = engine_id;
                validate::engine_error(&mut result.message);
                if !known_code(result.code) {
                    result.code = Code::Internal as i32;
                }
                self.end_transfer(id, result);
            }
            _ => tracing::debug!(
                transfer = id,
                "ignored a message that does not fit the copy"
            ),
        }
    }

    /// Ends a transfer with its engine's outcome, handing it to the relay.
    fn end_transfer(&mut self, id: u64, result: CopyResult) {
        let Some(transfer) = self.transfers.open.remove(&id) else {
            return;
        };
        if result.code != 0
            && let Some(engine) = self
                .engines
                .current(transfer.engine_id, transfer.connection)
        {
            // Harmless if the engine's part already ended; stops it if the hub ended it.
            engine.send(hub_message::Kind::FileClose(FileClose {
                transfer_id: id,
                cancel: true,
            }));
        }
        match transfer.leg {
            Leg::Upload { credit, outcome } => {
                credit.close();
                let _ = outcome.send(result);
            }
            Leg::Download { items, .. } => {
                let item = match result.code {
                    0 => Ok(DownloadReply {
                        kind: Some(download_reply::Kind::Done(
                            result.summary.unwrap_or_default(),
                        )),
                    }),
                    code => Err(HubError::Copy {
                        engine: result.engine_id,
                        code: Code::from(code),
                        message: result.message,
                    }),
                };
                let _ = items.send(item);
            }
        }
    }

    /// Fails every transfer of an engine that left (or of every engine, with `None`); `what`
    /// says what happened ("the engine left").
    pub(super) fn fail_transfers(&mut self, engine_id: Option<u32>, what: &str) {
        let ids: Vec<(u64, u32)> = self
            .transfers
            .open
            .iter()
            .filter(|(_, t)| engine_id.is_none_or(|e| e == t.engine_id))
            .map(|(id, t)| (*id, t.engine_id))
            .collect();
        for (id, engine) in ids {
            let message = format!(
                "{what} during the copy; nothing was put under the real name of the file being \
                 written; copy again"
            );
            self.end_transfer(id, engine_failure(engine, Code::Unavailable, message));
        }
    }
}

fn engine_failure(engine_id: u32, code: Code, message: String) -> CopyResult {
    CopyResult {
        engine_id,
        code: code as i32,
        message,
        summary: None,
    }
}

/// The codes an engine may report; anything else becomes INTERNAL.
fn known_code(code: i32) -> bool {
    matches!(
        Code::from(code),
        Code::Ok
            | Code::NotFound
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::DataLoss
            | Code::InvalidArgument
            | Code::Internal
            | Code::Unavailable
    )
}
