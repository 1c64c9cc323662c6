//! Writing a copy stream into the filesystem, atomically per file: each file is written
//! under a temporary name in its target directory, checked against its sender's SHA-256,
//! given its mode and mtime, and only then renamed to its real name. A copy that stops
//! halfway (an error, a cancel, a dropped [`Sink`]) leaves nothing under the real name and
//! removes its temporary file; only a killed process leaves one behind, named
//! `.NAME.warren-XXXXXXXX` beside where the file was going.

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use warren_proto::v1::{CopyEntry, CopyItem, CopySummary, EntryKind, copy_item};

use crate::error::{CopyError, ErrorKind, Result};
use crate::meta::{MODE_BITS, entry_path, set_mtime, timestamps};
use crate::source::CHUNK;

/// What all-zero chunks are compared with (a `memcmp`, fast even in a debug build).
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// Where the stream's sources land.
#[derive(Debug)]
enum Target {
    /// An existing directory: each source goes inside it, under its own name.
    Into(PathBuf),
    /// The one source's new name (or a file it replaces).
    As(PathBuf),
}

/// Puts a copy stream's files, directories and symlinks in place, as `cp -r` does: into the
/// target if it is an existing directory, else as the target (one source only).
#[derive(Debug)]
pub struct Sink {
    target: Target,
    sources: u32,
    roots: u32,
    /// The stream's directories, which later entries may go into.
    dirs: HashSet<PathBuf>,
    /// Directories to give their mode and mtime once everything in them is written.
    fixups: Vec<(PathBuf, u32, i64)>,
    file: Option<Writing>,
    summary: CopySummary,
    /// The sizes the stream's file entries announced, added up.
    announced: u64,
}

impl Sink {
    /// Resolves `target` for a stream of `sources` sources, refusing one that cannot work:
    /// several sources need an existing directory; one needs an existing directory or a
    /// name whose directory exists.
    pub fn open(target: &Path, sources: u32) -> Result<Self> {
        let shown = target.display();
        if target.as_os_str().is_empty() {
            return Err(CopyError::invalid("no destination path was given"));
        }
        let slash = target.as_os_str().as_encoded_bytes().ends_with(b"/");
        let target = match fs::metadata(target) {
            Ok(meta) if meta.is_dir() => Target::Into(target.to_owned()),
            Ok(_) if slash || sources > 1 => {
                return Err(CopyError::new(
                    ErrorKind::NotADirectory,
                    format!(
                        "{shown} is not a directory; copy several sources into an existing directory"
                    ),
                ));
            }
            Ok(_) => Target::As(target.to_owned()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if slash || sources > 1 {
                    return Err(CopyError::new(
                        ErrorKind::NotFound,
                        format!("the directory {shown} does not exist; create it first"),
                    ));
                }
                check_parent(target)?;
                Target::As(target.to_owned())
            }
            Err(err) => return Err(CopyError::io("use", target, &err)),
        };
        Ok(Self {
            target,
            sources: sources.max(1),
            roots: 0,
            dirs: HashSet::new(),
            fixups: Vec::new(),
            file: None,
            summary: CopySummary::default(),
            announced: 0,
        })
    }

    /// What has been put in place so far; `bytes` counts file bytes written, the file under
    /// way included.
    pub fn summary(&self) -> &CopySummary {
        &self.summary
    }

    /// The file bytes announced so far by the entries received (for progress: the total, once
    /// every entry has arrived).
    pub fn announced(&self) -> u64 {
        self.announced
    }

    /// Writes one item of the stream.
    pub fn apply(&mut self, item: CopyItem) -> Result<()> {
        match item.kind {
            Some(copy_item::Kind::Entry(entry)) => {
                if let Some(file) = &self.file {
                    return Err(CopyError::invalid(format!(
                        "the copy stream began {} before the file {} ended",
                        entry.path,
                        file.dest.display()
                    )));
                }
                self.entry(entry)
            }
            Some(copy_item::Kind::Data(data)) => {
                let file = self.file.as_mut().ok_or_else(outside_a_file)?;
                file.write(&data)?;
                self.summary.bytes += data.len() as u64;
                Ok(())
            }
            Some(copy_item::Kind::End(end)) => {
                let file = self.file.take().ok_or_else(outside_a_file)?;
                file.finish(&end.sha256)?;
                self.summary.files += 1;
                Ok(())
            }
            None => Err(CopyError::invalid("the copy stream carried an empty item")),
        }
    }

    /// Ends the copy: every file must have ended. Directories get their modes and mtimes,
    /// innermost first.
    pub fn finish(self) -> Result<CopySummary> {
        if let Some(file) = &self.file {
            return Err(CopyError::invalid(format!(
                "the copy stream ended in the middle of {}",
                file.dest.display()
            )));
        }
        if self.roots < self.sources {
            return Err(CopyError::invalid(format!(
                "the copy stream ended after {} of its {} sources",
                self.roots, self.sources
            )));
        }
        for (dir, mode, mtime_ns) in self.fixups.iter().rev() {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & MODE_BITS))
                .and_then(|()| set_mtime(dir, *mtime_ns))
                .map_err(|err| CopyError::io("set the mode and time of", dir, &err))?;
        }
        Ok(self.summary)
    }

    fn entry(&mut self, entry: CopyEntry) -> Result<()> {
        let relative = entry_path(&entry.path)?;
        // The path below the source's own name.
        let inner: PathBuf = relative.iter().skip(1).collect();
        if inner.as_os_str().is_empty() {
            self.roots += 1;
            if self.roots > self.sources {
                return Err(CopyError::invalid(format!(
                    "the copy stream sent more than the {} sources it announced",
                    self.sources
                )));
            }
        } else if !relative.parent().is_some_and(|p| self.dirs.contains(p)) {
            return Err(CopyError::invalid(format!(
                "the copy stream sent {} before its directory",
                entry.path
            )));
        }
        let dest = match &self.target {
            Target::Into(dir) => dir.join(&relative),
            Target::As(name) if inner.as_os_str().is_empty() => name.clone(),
            Target::As(name) => name.join(&inner),
        };
        match entry.kind() {
            EntryKind::Directory => {
                make_dir(&dest)?;
                self.dirs.insert(relative);
                self.fixups.push((dest, entry.mode, entry.mtime_ns));
                self.summary.directories += 1;
            }
            EntryKind::Symlink => {
                make_symlink(&dest, &entry.link_target, entry.mtime_ns)?;
                self.summary.symlinks += 1;
            }
            EntryKind::File => {
                self.announced += entry.size;
                self.file = Some(Writing::create(dest, entry.mode, entry.mtime_ns)?);
            }
            EntryKind::Unspecified => {
                return Err(CopyError::invalid(format!(
                    "the copy stream sent {} without saying what it is",
                    entry.path
                )));
            }
        }
        Ok(())
    }
}

fn outside_a_file() -> CopyError {
    CopyError::invalid("the copy stream sent file bytes or a file's end outside a file")
}

/// Refuses a new name whose directory does not exist (or is not a directory).
fn check_parent(target: &Path) -> Result<()> {
    let parent = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(CopyError::new(
            ErrorKind::NotADirectory,
            format!("{} is not a directory; check the path", parent.display()),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(CopyError::new(
            ErrorKind::NotFound,
            format!(
                "the directory {} does not exist; create it first",
                parent.display()
            ),
        )),
        Err(err) => Err(CopyError::io("use", parent, &err)),
    }
}

/// Makes a directory of the copy (writable by us until the copy ends), or takes an existing
/// one, as `cp -r` merges into it.
fn make_dir(dest: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dest) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            match fs::symlink_metadata(dest) {
                Ok(meta) if meta.is_dir() => Ok(()),
                _ => Err(CopyError::new(
                    ErrorKind::NotADirectory,
                    format!(
                        "{} exists and is not a directory; move it out of the way",
                        dest.display()
                    ),
                )),
            }
        }
        Err(err) => Err(CopyError::io("create the directory", dest, &err)),
    }
}

/// Refuses to put a file or link where a directory is.
fn refuse_directory(dest: &Path) -> Result<()> {
    if fs::symlink_metadata(dest).is_ok_and(|meta| meta.is_dir()) {
        return Err(CopyError::new(
            ErrorKind::IsADirectory,
            format!(
                "{} is a directory, so the file cannot go there; name a path inside it, or move it out of the way",
                dest.display()
            ),
        ));
    }
    Ok(())
}

fn make_symlink(dest: &Path, target: &str, mtime_ns: i64) -> Result<()> {
    refuse_directory(dest)?;
    let temp = TempName::new(dest);
    std::os::unix::fs::symlink(target, &temp.0)
        .map_err(|err| CopyError::io("create a link in", temp.dir(), &err))?;
    set_mtime(&temp.0, mtime_ns)
        .and_then(|()| fs::rename(&temp.0, dest))
        .map_err(|err| CopyError::io("put the link in place at", dest, &err))?;
    temp.keep();
    Ok(())
}

/// A temporary name beside `dest`, removed when dropped unless kept.
#[derive(Debug)]
struct TempName(PathBuf);

impl TempName {
    fn new(dest: &Path) -> Self {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cut = name.len().min(100);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let tag = hex::encode(getrandom::u32().unwrap_or(0).to_le_bytes());
        Self(dest.with_file_name(format!(".{}.warren-{tag}", &name[..cut])))
    }

    /// The directory it is in.
    fn dir(&self) -> &Path {
        self.0.parent().unwrap_or(Path::new("."))
    }

    /// It now has its real name: nothing to remove.
    fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// A file being written under its temporary name.
#[derive(Debug)]
struct Writing {
    dest: PathBuf,
    temp: TempName,
    file: File,
    hasher: Sha256,
    mode: u32,
    mtime_ns: i64,
    /// Where the next bytes go.
    len: u64,
    /// The last chunk was a hole (skipped, not written): the file's length must be set.
    hole_at_end: bool,
}

impl Writing {
    fn create(dest: PathBuf, mode: u32, mtime_ns: i64) -> Result<Self> {
        refuse_directory(&dest)?;
        let temp = TempName::new(&dest);
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp.0)
            .map_err(|err| CopyError::io("create a file in", temp.dir(), &err))?;
        Ok(Self {
            dest,
            temp,
            file,
            hasher: Sha256::new(),
            mode,
            mtime_ns,
            len: 0,
            hole_at_end: false,
        })
    }

    /// Writes a chunk; a chunk of zeros becomes a hole, as `cp --sparse=auto` makes.
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        let hole = data.len() >= 4096 && data == &ZEROS[..data.len().min(CHUNK)];
        let done = if hole {
            self.file
                .seek(SeekFrom::Current(data.len() as i64))
                .map(|_| ())
        } else {
            self.file.write_all(data)
        };
        done.map_err(|err| CopyError::io("write", &self.dest, &err))?;
        self.len += data.len() as u64;
        self.hole_at_end = hole;
        Ok(())
    }

    /// Checks the digest, sets mode and mtime, and renames the file to its real name.
    fn finish(mut self, sha256: &[u8]) -> Result<()> {
        if self.hole_at_end {
            self.file
                .set_len(self.len)
                .map_err(|err| CopyError::io("write", &self.dest, &err))?;
        }
        let digest = std::mem::take(&mut self.hasher).finalize();
        if digest.as_slice() != sha256 {
            return Err(CopyError::new(
                ErrorKind::Mismatch,
                format!(
                    "the SHA-256 of {} as written ({}) is not the sender's ({}); nothing was put under that name; copy it again",
                    self.dest.display(),
                    hex::encode(digest),
                    hex::encode(sha256)
                ),
            ));
        }
        let times = timestamps(self.mtime_ns);
        self.file
            .set_permissions(fs::Permissions::from_mode(self.mode & MODE_BITS))
            .and_then(|()| Ok(rustix::fs::futimens(&self.file, &times)?))
            .and_then(|()| fs::rename(&self.temp.0, &self.dest))
            .map_err(|err| CopyError::io("put in place", &self.dest, &err))?;
        self.temp.keep();
        Ok(())
    }
}
