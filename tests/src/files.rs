//! Helpers for the file copy tests: large files that cost little disk, digests, what a copy
//! left behind, FIFOs a test feeds by hand, and engines with a working directory or
//! permissions of their own.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Cluster, PATIENCE, binary, eventually};

/// Writes a sparse file of `size` bytes: holes, with 64 KiB of pseudo-random bytes (from
/// `seed`) every 16 MiB, so a copy that moves, drops or reorders any chunk changes its digest,
/// while the disk holds only the random parts.
pub fn sparse_file(path: &Path, size: u64, seed: u64) {
    let file = File::create(path).expect("create the sparse file");
    file.set_len(size).expect("size the sparse file");
    let mut state = seed | 1;
    let mut block = vec![0u8; 64 << 10];
    let mut offset = 0;
    while offset < size {
        for byte in block.iter_mut() {
            // xorshift64: deterministic, and plenty for telling chunks apart.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let len = block.len().min((size - offset) as usize);
        std::os::unix::fs::FileExt::write_all_at(&file, &block[..len], offset)
            .expect("write a block");
        offset += 16 << 20;
    }
}

/// A file's SHA-256, read in chunks.
pub fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The temporary files a copy has left in `dir` (`.NAME.warren-XXXXXXXX`), with their sizes.
pub fn leftovers(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".warren-"))
                .map(|e| {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until a copy into `dir` has written `bytes` under a temporary name.
pub async fn wait_for_partial_copy(dir: &Path, bytes: u64) {
    let seen = eventually(PATIENCE, || {
        let found = leftovers(dir);
        async move {
            if found.iter().any(|(_, size)| *size >= bytes) {
                Ok(())
            } else {
                Err(found)
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "no temporary file of {bytes} bytes appeared in {}: {seen:?}",
        dir.display()
    );
}

/// Waits until `dir` holds no temporary file of a copy and nothing called `name`.
pub async fn wait_for_nothing_left(dir: &Path, name: &str) {
    let clean = eventually(PATIENCE, || {
        let found = leftovers(dir);
        let there = dir.join(name).exists();
        async move {
            if found.is_empty() && !there {
                Ok(())
            } else {
                Err((found, there))
            }
        }
    })
    .await;
    assert!(
        clean.is_ok(),
        "the interrupted copy left something in {} (temporary files, whether {name} exists): {clean:?}",
        dir.display()
    );
}

/// A FIFO the test writes into by hand, so a copy reading it stops halfway for as long as
/// the test wants.
pub struct Fifo {
    /// Its path.
    pub path: PathBuf,
    writer: Option<File>,
}

impl Fifo {
    /// Makes the FIFO.
    pub fn new(path: PathBuf) -> Self {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        Self { path, writer: None }
    }

    /// Waits until a reader has opened it, then writes `bytes` (the reader must take them).
    pub async fn feed(&mut self, bytes: &[u8]) {
        if self.writer.is_none() {
            let path = self.path.clone();
            let opened = eventually(PATIENCE, || {
                let path = path.clone();
                // Non-blocking, so that no reader yet is an error (ENXIO), not a hang.
                async move {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                        .open(&path)
                }
            })
            .await
            .expect("a copy opened the FIFO for reading");
            rustix::fs::fcntl_setfl(opened.as_fd(), rustix::fs::OFlags::empty())
                .expect("make the FIFO's writes blocking");
            self.writer = Some(opened);
        }
        let mut writer = self.writer.take().expect("writer");
        let bytes = bytes.to_vec();
        let writer = tokio::task::spawn_blocking(move || {
            writer.write_all(&bytes).expect("write into the FIFO");
            writer
        });
        let writer = tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("the copy took what was written into the FIFO")
            .expect("writer thread");
        self.writer = Some(writer);
    }

    /// Closes the writing end: the reader sees the end of the file.
    pub fn close(&mut self) {
        self.writer = None;
    }
}

/// Starts an engine whose working directory is `cwd` (where relative copy paths land).
pub fn engine_in(cluster: &mut Cluster, cwd: &Path, args: &[&str]) -> usize {
    let spill = cwd.join(".spill");
    let locate = [
        std::ffi::OsStr::new("--connection-file"),
        cluster.connection_file.as_os_str(),
    ];
    let mut command = cluster.engine_command(&locate, &spill);
    command.current_dir(cwd).args(args);
    cluster.push_engine("warren-engine", command)
}

/// Starts an engine that file permissions bind even when the tests run as root: as root it
/// runs under `setpriv` without the capabilities that override them. `None` (with a loud
/// skip) if that is not possible here.
pub fn engine_bound_by_permissions(cluster: &mut Cluster) -> Option<usize> {
    if !rustix::process::geteuid().is_root() {
        return Some(cluster.add_engine(&[]));
    }
    let setpriv = crate::require_tool("setpriv", &["/usr/bin"], "WARREN_REQUIRE_SETPRIV")?;
    let spill = cluster.dir().join("spill-bound");
    let mut command = Command::new(setpriv);
    command
        .args([
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--inh-caps=-all",
            "--",
        ])
        .arg(binary("warren-engine"))
        .arg("--connection-file")
        .arg(&cluster.connection_file)
        .arg("--spill-dir")
        .arg(spill)
        .env("RUST_LOG", "warn,warren_engine=debug");
    Some(cluster.push_engine("warren-engine (no DAC override)", command))
}

/// Every path under `root` with what a copy keeps of it (kind, permission bits, mtime to the
/// nanosecond, content digest or link target), sorted, for comparing two trees.
pub fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let name = path
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let what = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("list") {
                stack.push(entry.expect("entry").path());
            }
            "dir".to_owned()
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            out.push(format!("{name} link -> {}", target.display()));
            continue;
        } else {
            format!("file {}", sha256_file(&path))
        };
        let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        out.push(format!("{name} {what} {:o} {mtime}", meta.mode() & 0o7777));
    }
    out.sort();
    out
}
