//! Reading files and trees into a copy stream, one [`CopyItem`] at a time, never holding more
//! than one chunk.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use warren_proto::v1::{CopyEntry, CopyFileEnd, CopyItem, CopySummary, EntryKind, copy_item};

use crate::error::{CopyError, ErrorKind, Result};
use crate::meta::{mode, mtime_ns, source_name};

/// Bytes of file data per item.
pub const CHUNK: usize = 256 * 1024;
/// The smallest read buffer.
const PAGE: usize = 4096;

/// A copy stream read from local paths: each path (a source) becomes an entry named after
/// it, and with `recursive` a directory becomes the entries of its tree, in name order,
/// each directory before what it holds. Symlinks named as sources are followed, symlinks
/// inside a tree are copied as symlinks, and special files inside a tree are skipped.
#[derive(Debug)]
pub struct Source {
    roots: VecDeque<PathBuf>,
    recursive: bool,
    /// The directories being walked, innermost last.
    walks: Vec<Walk>,
    /// The file being read, if any.
    file: Option<Reading>,
    summary: CopySummary,
}

/// A directory being walked.
#[derive(Debug)]
struct Walk {
    dir: PathBuf,
    /// Its path in the stream.
    entry: String,
    /// Names not yet sent, last first.
    names: Vec<OsString>,
}

/// A file being read.
#[derive(Debug)]
struct Reading {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    /// Not a regular file (a FIFO, a terminal): send what each read gives, at once.
    stream: bool,
    /// Bytes its size says are still to come, to size the next buffer.
    left: u64,
}

impl Source {
    /// Checks the sources (each exists, and is a directory only with `recursive`) and
    /// starts reading them.
    pub fn open(paths: &[PathBuf], recursive: bool) -> Result<Self> {
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|err| CopyError::io("read", path, &err))?;
            if meta.is_dir() && !recursive {
                return Err(not_recursive(path));
            }
            source_name(path)?;
        }
        Ok(Self {
            roots: paths.iter().cloned().collect(),
            recursive,
            walks: Vec::new(),
            file: None,
            summary: CopySummary::default(),
        })
    }

    /// What has been read so far (all of it, once [`next_item`](Self::next_item) gave `None`).
    pub fn summary(&self) -> &CopySummary {
        &self.summary
    }

    /// The stream's next item, or `None` at its end.
    pub fn next_item(&mut self) -> Result<Option<CopyItem>> {
        loop {
            if let Some(reading) = &mut self.file {
                let item = read_chunk(reading)?;
                match &item {
                    copy_item::Kind::Data(data) => self.summary.bytes += data.len() as u64,
                    _ => self.file = None,
                }
                return Ok(Some(CopyItem { kind: Some(item) }));
            }
            if let Some(walk) = self.walks.last_mut() {
                let Some(name) = walk.names.pop() else {
                    self.walks.pop();
                    continue;
                };
                let path = walk.dir.join(&name);
                let entry = format!("{}/{}", walk.entry, utf8(&path, name)?);
                match self.entry(path, entry, false)? {
                    Some(item) => return Ok(Some(item)),
                    None => continue,
                }
            }
            let Some(root) = self.roots.pop_front() else {
                return Ok(None);
            };
            let name = source_name(&root)?;
            if let Some(item) = self.entry(root, name, true)? {
                return Ok(Some(item));
            }
        }
    }

    /// The entry for `path`, named `entry` in the stream; `None` for a special file in a
    /// tree, which is skipped. A source (`top`) that is a symlink is followed.
    fn entry(&mut self, path: PathBuf, entry: String, top: bool) -> Result<Option<CopyItem>> {
        let meta = if top {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .map_err(|err| CopyError::io("read", &path, &err))?;
        let kind = meta.file_type();
        let mut out = CopyEntry {
            path: entry.clone(),
            mode: mode(&meta),
            mtime_ns: mtime_ns(&meta),
            ..CopyEntry::default()
        };
        if kind.is_dir() {
            if !self.recursive {
                return Err(not_recursive(&path));
            }
            let mut names: Vec<OsString> = std::fs::read_dir(&path)
                .and_then(|dir| dir.map(|e| e.map(|e| e.file_name())).collect())
                .map_err(|err: std::io::Error| CopyError::io("list", &path, &err))?;
            names.sort_unstable_by(|a, b| b.cmp(a));
            self.walks.push(Walk {
                dir: path,
                entry,
                names,
            });
            self.summary.directories += 1;
            out.set_kind(EntryKind::Directory);
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(|err| CopyError::io("read the link", &path, &err))?;
            out.link_target = utf8(&path, target.into_os_string())?;
            self.summary.symlinks += 1;
            out.set_kind(EntryKind::Symlink);
        } else if kind.is_file() || (top && (kind.is_fifo() || kind.is_char_device())) {
            self.open_file(path, &meta)?;
            out.size = if kind.is_file() { meta.len() } else { 0 };
            self.summary.files += 1;
            out.set_kind(EntryKind::File);
        } else if top {
            return Err(CopyError::new(
                ErrorKind::InTheWay,
                format!(
                    "cannot copy {}: it is a socket or a device; only files, directories and symlinks are copied",
                    path.display()
                ),
            ));
        } else {
            self.summary.skipped += 1;
            return Ok(None);
        }
        Ok(Some(CopyItem {
            kind: Some(copy_item::Kind::Entry(out)),
        }))
    }

    fn open_file(&mut self, path: PathBuf, meta: &Metadata) -> Result<()> {
        let file = File::open(&path).map_err(|err| CopyError::io("read", &path, &err))?;
        self.file = Some(Reading {
            file,
            path,
            hasher: Sha256::new(),
            stream: !meta.is_file(),
            left: meta.len(),
        });
        Ok(())
    }
}

/// The next chunk of a file, or its end (with its digest) once it is all read.
fn read_chunk(reading: &mut Reading) -> Result<copy_item::Kind> {
    // A small file gets a small buffer; one that grew is read on, a page at a time.
    let size = if reading.stream {
        CHUNK
    } else {
        (reading.left as usize).clamp(PAGE, CHUNK)
    };
    let mut buf = BytesMut::zeroed(size);
    let mut filled = 0;
    while filled < size {
        match reading.file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if reading.stream {
                    break;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(CopyError::io("read", &reading.path, &err)),
        }
    }
    if filled == 0 {
        let digest = std::mem::take(&mut reading.hasher).finalize();
        return Ok(copy_item::Kind::End(CopyFileEnd {
            sha256: digest.to_vec(),
        }));
    }
    buf.truncate(filled);
    reading.left = reading.left.saturating_sub(filled as u64);
    reading.hasher.update(&buf);
    Ok(copy_item::Kind::Data(Bytes::from(buf)))
}

/// The bytes of the files under `paths` (following symlinked sources, as [`Source`] does), for
/// progress; what cannot be read counts nothing (reading it will fail with a clear error).
pub fn total_size(paths: &[PathBuf], recursive: bool) -> u64 {
    let mut total = 0;
    let mut stack: Vec<(PathBuf, bool)> = paths.iter().map(|p| (p.clone(), true)).collect();
    while let Some((path, top)) = stack.pop() {
        let meta = if top {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        };
        match meta {
            Ok(meta) if meta.is_file() => total += meta.len(),
            Ok(meta) if meta.is_dir() && recursive => {
                if let Ok(dir) = std::fs::read_dir(&path) {
                    stack.extend(dir.flatten().map(|e| (e.path(), false)));
                }
            }
            _ => {}
        }
    }
    total
}

fn not_recursive(path: &Path) -> CopyError {
    CopyError::new(
        ErrorKind::IsADirectory,
        format!(
            "{} is a directory; add -r to copy it and everything in it",
            path.display()
        ),
    )
}

fn utf8(path: &Path, name: OsString) -> Result<String> {
    name.into_string().map_err(|_| {
        CopyError::invalid(format!(
            "{} is not UTF-8, which the copy stream needs; rename it to copy it",
            path.display()
        ))
    })
}
