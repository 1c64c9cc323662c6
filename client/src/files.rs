//! Copying files to and from engines ([`Client::upload`], [`Client::download`]), through the
//! hub, streamed in chunks with flow control end to end and a SHA-256 checked per file.
//!
//! Local files are read and written on a blocking thread ([`warren_files`]); items cross to
//! the call through a small bounded channel, so a slow disk holds the stream back and a slow
//! stream holds the disk back. Downloads land atomically: each file under a temporary name
//! until its digest is checked, then renamed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warren_files::{Sink, Source};
use warren_proto::passthrough::{Received, call_server_streaming};
use warren_proto::transport::SignedChannel;
use warren_proto::v1::files_client::FilesClient;
use warren_proto::v1::{
    CopyItem, CopyResult, CopySummary, DownloadReply, DownloadRequest, UploadRequest, UploadStart,
    download_reply, upload_request,
};

use crate::{Client, Error, Result};

/// Items read ahead of the call, or received ahead of the disk.
const AHEAD: usize = 4;
/// The largest message of a copy (a chunk and its framing, with room to spare).
const MAX_MESSAGE: usize = 4 << 20;

const DOWNLOAD: &str = "/warren.v1.Files/Download";

/// Where an upload goes.
///
/// ```
/// let to = warren::CopyTo::Engine(3);
/// assert_ne!(to, warren::CopyTo::All);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyTo {
    /// One engine, by id.
    Engine(u32),
    /// Every engine connected now.
    All,
}

/// Called with the file bytes moved so far and the bytes expected so far.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How to copy: recursively or not, and who hears of the progress.
///
/// ```
/// let options = warren::CopyOptions::new()
///     .recursive(true)
///     .progress(|done, total| eprintln!("{done} of {total} bytes"));
/// ```
#[derive(Clone, Default)]
pub struct CopyOptions {
    recursive: bool,
    progress: Option<Progress>,
}

impl fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyOptions")
            .field("recursive", &self.recursive)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl CopyOptions {
    /// Files only, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy directories and everything in them (`-r`).
    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }

    /// Calls `progress(done, total)` as file bytes move (from a thread of the SDK's own).
    pub fn progress(mut self, progress: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    fn report(&self, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(done, total);
        }
    }
}

impl Client {
    /// The generated `Files` client, signing every call.
    ///
    /// ```no_run
    /// # fn f(client: warren::Client) {
    /// let files = client.files();
    /// # }
    /// ```
    pub fn files(&self) -> FilesClient<SignedChannel> {
        FilesClient::new(self.channel().clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Copies local files (and with [`CopyOptions::recursive`], directories) to `path` on one
    /// engine or on every engine, as `cp` would: into `path` if it is a directory there, else
    /// as `path` (one source only). Returns each engine's outcome; with one engine, its
    /// failure is the error.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// use warren::{CopyOptions, CopyTo};
    /// let results = client
    ///     .upload(&["data.csv".into()], CopyTo::Engine(1), "/tmp/", &CopyOptions::new())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn upload(
        &self,
        sources: &[PathBuf],
        to: CopyTo,
        path: &str,
        options: &CopyOptions,
    ) -> Result<Vec<CopyResult>> {
        let mut source = Source::open(sources, options.recursive)?;
        let total = warren_files::total_size(sources, options.recursive);
        let (engine_id, all) = match to {
            CopyTo::Engine(id) => (id, false),
            CopyTo::All => (0, true),
        };
        let start = UploadStart {
            engine_id,
            all,
            path: path.to_owned(),
            sources: sources.len() as u32,
        };
        let (tx, rx) = mpsc::channel(AHEAD);
        let first = UploadRequest {
            kind: Some(upload_request::Kind::Start(start)),
        };
        tx.send(first).await.map_err(|_| closed())?;
        let reader_options = options.clone();
        let mut reader = tokio::task::spawn_blocking(move || {
            while let Some(item) = source.next_item()? {
                let request = UploadRequest {
                    kind: Some(upload_request::Kind::Item(item)),
                };
                if tx.blocking_send(request).is_err() {
                    // The call ended early; its outcome says why.
                    break;
                }
                reader_options.report(source.summary().bytes, total);
            }
            Ok::<_, warren_files::CopyError>(())
        });
        let mut files = self.files();
        let call = files.upload(ReceiverStream::new(rx));
        tokio::pin!(call);
        let reply = tokio::select! {
            reply = &mut call => reply,
            read = &mut reader => {
                // A file that cannot be read ends the copy: dropping the call resets its
                // stream, and the hub cancels the engines' parts.
                read.map_err(|_| closed())??;
                call.await
            }
        };
        Ok(reply?.into_inner().results)
    }

    /// Copies a file (or with [`CopyOptions::recursive`], a directory) from an engine to
    /// `to` here, as `cp` would: into `to` if it is a directory, else as `to`. Each file is
    /// written under a temporary name and renamed once its SHA-256 matches the engine's.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let summary = client
    ///     .download(1, "/var/log/syslog", "logs/".as_ref(), &warren::CopyOptions::new())
    ///     .await?;
    /// println!("{} bytes", summary.bytes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn download(
        &self,
        engine_id: u32,
        path: &str,
        to: &Path,
        options: &CopyOptions,
    ) -> Result<CopySummary> {
        // A destination that cannot work is refused before the engine reads anything.
        let mut sink = Sink::open(to, 1)?;
        let request = DownloadRequest {
            engine_id,
            path: path.to_owned(),
            recursive: options.recursive,
        };
        // Read where the bytes lie (see `Received`), as the event streams are.
        let mut channel = self.channel().clone();
        let mut stream: Received<DownloadReply> =
            call_server_streaming(&mut channel, DOWNLOAD, request, MAX_MESSAGE)
                .await?
                .into_inner();
        let (tx, mut rx) = mpsc::channel::<Option<CopyItem>>(AHEAD);
        let writer_options = options.clone();
        let mut writer = tokio::task::spawn_blocking(move || {
            // `None` ends the copy; a closed channel gives it up (the sink removes its file).
            while let Some(next) = rx.blocking_recv() {
                match next {
                    Some(item) => sink.apply(item)?,
                    None => return sink.finish().map(Some),
                }
                writer_options.report(sink.summary().bytes, sink.announced());
            }
            Ok(None)
        });
        loop {
            let next = tokio::select! {
                next = stream.message() => next?,
                // The writer stopped early: a local file could not be written.
                written = &mut writer => {
                    written.map_err(|_| closed())??;
                    return Err(closed());
                }
            };
            let item = match next.and_then(|reply| reply.kind) {
                Some(download_reply::Kind::Item(item)) => Some(item),
                Some(download_reply::Kind::Done(_)) => None,
                None => return Err(closed()),
            };
            let last = item.is_none();
            if tx.send(item).await.is_err() || last {
                break;
            }
        }
        match writer.await.map_err(|_| closed())?? {
            Some(summary) => Ok(summary),
            None => Err(closed()),
        }
    }
}

/// The copy's stream or thread ended without an outcome.
fn closed() -> Error {
    Error::Status(tonic::Status::internal(
        "the copy ended before its outcome was known; copy again",
    ))
}
