//! File transfers the hub asks for (`warren cp`), run as the engine's user with its
//! permissions.
//!
//! Each transfer runs on a blocking thread of its own ([`warren_files`] does plain file I/O)
//! and talks to the hub over the session's stream:
//! - an upload's items arrive in `FileData`; the thread writes them through a [`Sink`] and
//!   answers `FileCredit` for what it wrote, which is what lets the hub send more;
//! - a download's thread reads through a [`Source`] and sends items only while the hub has
//!   given credit for them (the window in `FileOpen`, then `FileCredit` as the hub passes
//!   items on to the client), so neither the engine nor the hub ever holds more than a window.
//!
//! Either ends with one `FileDone` carrying the outcome. A transfer the hub gives up
//! (`FileClose` with cancel), or whose session ends, stops at once, and its sink removes the
//! file it was writing under a temporary name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, mpsc as sync_mpsc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use warren_files::{CopyError, ErrorKind, Sink, Source};
use warren_proto::v1::{
    CopyItem, CopyResult, CopySummary, DownloadRequest, EngineMessage, FileCredit, FileData,
    FileDone, UploadStart, engine_message, file_open, hub_message,
};

/// Credit for upload items is returned once this much is owed, or when the thread has
/// nothing more to write.
const CREDIT_BATCH: u64 = 64 * 1024;

/// What an upload's thread is told.
enum ToWriter {
    Item(CopyItem),
    /// Every item is sent: put the files in place.
    Close,
}

/// An open transfer, as the session sees it.
enum Handle {
    Upload(sync_mpsc::Sender<ToWriter>),
    Download(Arc<Credit>),
}

/// The transfers of one session.
pub struct Transfers {
    /// Whether this engine copies files (not started with --no-files).
    enabled: bool,
    out: mpsc::Sender<EngineMessage>,
    open: HashMap<u64, (Handle, JoinHandle<()>)>,
}

impl Transfers {
    /// No transfers yet; their messages to the hub go to `out`.
    pub fn new(enabled: bool, out: mpsc::Sender<EngineMessage>) -> Self {
        Self {
            enabled,
            out,
            open: HashMap::new(),
        }
    }

    /// Handles one of the hub's file messages (others are ignored).
    pub fn handle(&mut self, message: hub_message::Kind) {
        self.open.retain(|_, (_, thread)| !thread.is_finished());
        match message {
            hub_message::Kind::FileOpen(open) => {
                let id = open.transfer_id;
                let (enabled, out) = (self.enabled, self.out.clone());
                let span = tracing::info_span!("transfer", id);
                let (handle, thread) = match open.kind {
                    Some(file_open::Kind::Upload(start)) => {
                        let (tx, rx) = sync_mpsc::channel();
                        let thread = tokio::task::spawn_blocking(move || {
                            let _span = span.entered();
                            receive(id, enabled, start, rx, out)
                        });
                        (Handle::Upload(tx), thread)
                    }
                    Some(file_open::Kind::Download(request)) => {
                        let credit = Arc::new(Credit::new(open.window));
                        let give = credit.clone();
                        let thread = tokio::task::spawn_blocking(move || {
                            let _span = span.entered();
                            send(id, enabled, request, &give, out)
                        });
                        (Handle::Download(credit), thread)
                    }
                    None => return,
                };
                self.open.insert(id, (handle, thread));
            }
            hub_message::Kind::FileData(data) => {
                if let (Some((Handle::Upload(tx), _)), Some(item)) =
                    (self.open.get(&data.transfer_id), data.item)
                {
                    let _ = tx.send(ToWriter::Item(item));
                }
            }
            hub_message::Kind::FileCredit(credit) => {
                if let Some((Handle::Download(window), _)) = self.open.get(&credit.transfer_id) {
                    window.give(credit.bytes);
                }
            }
            hub_message::Kind::FileClose(close) if close.cancel => {
                if let Some((handle, _)) = self.open.remove(&close.transfer_id) {
                    tracing::info!(transfer = close.transfer_id, "the copy was given up");
                    cancel(handle);
                }
            }
            hub_message::Kind::FileClose(close) => {
                if let Some((Handle::Upload(tx), _)) = self.open.get(&close.transfer_id) {
                    let _ = tx.send(ToWriter::Close);
                }
            }
            _ => {}
        }
    }
}

impl Drop for Transfers {
    /// The session is over: every transfer stops (their threads see it and clean up).
    fn drop(&mut self) {
        for (_, (handle, _)) in self.open.drain() {
            cancel(handle);
        }
    }
}

fn cancel(handle: Handle) {
    match handle {
        // Dropping the sender ends the writer's loop; its sink removes the temporary file.
        Handle::Upload(tx) => drop(tx),
        Handle::Download(credit) => credit.close(),
    }
}

/// The refusal of an engine started with --no-files.
fn no_files() -> CopyError {
    CopyError::new(
        ErrorKind::InTheWay,
        "this engine was started with --no-files: it runs tasks but copies no files; use \
         another engine, or restart this one without --no-files",
    )
}

/// Why a transfer stopped without an outcome to report: the hub or the session gave it up.
struct Cancelled;

/// An upload's thread: writes the items it is given, returning credit as it goes.
fn receive(
    id: u64,
    enabled: bool,
    start: UploadStart,
    rx: sync_mpsc::Receiver<ToWriter>,
    out: mpsc::Sender<EngineMessage>,
) {
    let credit = |bytes: u64| {
        let kind = engine_message::Kind::FileCredit(FileCredit {
            transfer_id: id,
            bytes,
        });
        out.blocking_send(EngineMessage { kind: Some(kind) })
            .is_ok()
    };
    let result = (|| -> Result<Result<CopySummary, CopyError>, Cancelled> {
        if !enabled {
            return Ok(Err(no_files()));
        }
        tracing::info!(path = %start.path, sources = start.sources, "receiving files");
        let mut sink = match Sink::open(Path::new(&start.path), start.sources) {
            Ok(sink) => sink,
            Err(err) => return Ok(Err(err)),
        };
        let mut owed = 0u64;
        loop {
            let next = match rx.try_recv() {
                Ok(next) => next,
                Err(sync_mpsc::TryRecvError::Empty) => {
                    if owed > 0 && !credit(std::mem::take(&mut owed)) {
                        return Err(Cancelled);
                    }
                    rx.recv().map_err(|_| Cancelled)?
                }
                Err(sync_mpsc::TryRecvError::Disconnected) => return Err(Cancelled),
            };
            match next {
                ToWriter::Item(item) => {
                    owed += item_cost(&item);
                    if let Err(err) = sink.apply(item) {
                        return Ok(Err(err));
                    }
                    if owed >= CREDIT_BATCH && !credit(std::mem::take(&mut owed)) {
                        return Err(Cancelled);
                    }
                }
                ToWriter::Close => return Ok(sink.finish()),
            }
        }
    })();
    done(id, result, &out);
}

/// A download's thread: reads the path and sends its items within the hub's credit.
fn send(
    id: u64,
    enabled: bool,
    request: DownloadRequest,
    credit: &Credit,
    out: mpsc::Sender<EngineMessage>,
) {
    let result = (|| -> Result<Result<CopySummary, CopyError>, Cancelled> {
        if !enabled {
            return Ok(Err(no_files()));
        }
        tracing::info!(path = %request.path, recursive = request.recursive, "sending files");
        let mut source = match Source::open(&[PathBuf::from(&request.path)], request.recursive) {
            Ok(source) => source,
            Err(err) => return Ok(Err(err)),
        };
        loop {
            let item = match source.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => return Ok(Ok(*source.summary())),
                Err(err) => return Ok(Err(err)),
            };
            credit.take(item_cost(&item))?;
            let kind = engine_message::Kind::FileData(FileData {
                transfer_id: id,
                item: Some(item),
            });
            out.blocking_send(EngineMessage { kind: Some(kind) })
                .map_err(|_| Cancelled)?;
        }
    })();
    done(id, result, &out);
}

/// Reports a transfer's outcome, unless it was given up.
fn done(
    id: u64,
    result: Result<Result<CopySummary, CopyError>, Cancelled>,
    out: &mpsc::Sender<EngineMessage>,
) {
    let result = match result {
        Err(Cancelled) => return,
        Ok(Ok(summary)) => {
            tracing::info!(files = summary.files, bytes = summary.bytes, "copy done");
            CopyResult {
                summary: Some(summary),
                ..CopyResult::default()
            }
        }
        Ok(Err(err)) => {
            tracing::info!(%err, "copy failed");
            CopyResult {
                code: err.code() as i32,
                message: err.message().to_owned(),
                ..CopyResult::default()
            }
        }
    };
    let kind = engine_message::Kind::FileDone(FileDone {
        transfer_id: id,
        result: Some(result),
    });
    let _ = out.blocking_send(EngineMessage { kind: Some(kind) });
}

/// What an item costs of a window: its encoded size, which the hub counts the same way.
fn item_cost(item: &CopyItem) -> u64 {
    prost::Message::encoded_len(item) as u64
}

/// A download's credit: bytes the engine may still send before the hub passes more on.
struct Credit {
    state: Mutex<(u64, bool)>,
    changed: Condvar,
    window: u64,
}

impl Credit {
    fn new(window: u64) -> Self {
        Self {
            state: Mutex::new((window, false)),
            changed: Condvar::new(),
            window,
        }
    }

    /// Waits until `bytes` may be sent (an item larger than the window waits for all of it).
    fn take(&self, bytes: u64) -> Result<(), Cancelled> {
        let need = bytes.min(self.window);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let (available, closed) = &mut *state;
            if *closed {
                return Err(Cancelled);
            }
            if *available >= need {
                *available = available.saturating_sub(bytes);
                return Ok(());
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.saturating_add(bytes);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.notify_all();
    }
}
