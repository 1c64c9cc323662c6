//! A source read into a sink, on real files in temp dirs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tonic::Code;
use warren_proto::v1::{CopyEntry, CopyFileEnd, CopyItem, EntryKind, copy_item};

use crate::meta::{mode, mtime_ns};
use crate::{CHUNK, Sink, Source};

/// Copies `sources` to `target` the way a transfer does, item by item.
fn copy(sources: &[PathBuf], target: &Path, recursive: bool) -> crate::Result<u64> {
    let mut source = Source::open(sources, recursive)?;
    let mut sink = Sink::open(target, sources.len() as u32)?;
    while let Some(item) = source.next_item()? {
        sink.apply(item)?;
    }
    let summary = sink.finish()?;
    assert_eq!(summary.bytes, source.summary().bytes);
    Ok(summary.bytes)
}

fn write(path: &Path, bytes: &[u8], mode: u32, mtime_ns: i64) {
    fs::write(path, bytes).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    crate::meta::set_mtime(path, mtime_ns).expect("mtime");
}

/// Every name under `dir`, with what a copy keeps of it.
fn describe(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).expect("meta");
        let name = path.strip_prefix(dir).expect("under").display().to_string();
        let what = if meta.is_dir() {
            for entry in fs::read_dir(&path).expect("list") {
                stack.push(entry.expect("entry").path());
            }
            "dir".to_owned()
        } else if meta.is_symlink() {
            format!("link->{}", fs::read_link(&path).expect("link").display())
        } else {
            format!("file {:x?}", sha(&fs::read(&path).expect("read")))
        };
        let mode = if meta.is_symlink() { 0 } else { mode(&meta) };
        out.push(format!("{name} {what} {mode:o} {}", mtime_ns(&meta)));
    }
    out.sort();
    out
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".warren-"))
        .collect()
}

#[test]
fn a_tree_arrives_with_its_bytes_modes_mtimes_and_links() {
    let from = tempfile::tempdir().expect("tempdir");
    let to = tempfile::tempdir().expect("tempdir");
    let tree = from.path().join("tree");
    fs::create_dir_all(tree.join("sub/deeper")).expect("mkdir");
    let big: Vec<u8> = (0..CHUNK * 2 + 12_345)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut sparse = vec![0u8; CHUNK * 3];
    sparse[CHUNK + 5] = 1;
    write(
        &tree.join("big.bin"),
        &big,
        0o640,
        1_600_000_000_123_456_789,
    );
    write(&tree.join("empty"), b"", 0o600, 1_500_000_000_000_000_000);
    write(
        &tree.join("sub/run.sh"),
        b"#!/bin/sh\n",
        0o755,
        1_400_000_000_000_000_005,
    );
    write(
        &tree.join("sub/deeper/zeros"),
        &sparse,
        0o644,
        1_300_000_000_000_000_001,
    );
    std::os::unix::fs::symlink("../big.bin", tree.join("sub/link")).expect("symlink");
    fs::set_permissions(tree.join("sub/deeper"), fs::Permissions::from_mode(0o500)).expect("chmod");
    crate::meta::set_mtime(&tree.join("sub/deeper"), 1_200_000_000_000_000_000).expect("mtime");
    crate::meta::set_mtime(&tree.join("sub"), 1_100_000_000_000_000_000).expect("mtime");

    let bytes = copy(std::slice::from_ref(&tree), to.path(), true).expect("copy");
    assert_eq!(bytes, (big.len() + 10 + sparse.len()) as u64);
    assert_eq!(describe(&tree), describe(&to.path().join("tree")));

    // Again, under a new name, over what is there: merged, and the same.
    let renamed = to.path().join("renamed");
    copy(std::slice::from_ref(&tree), &renamed, true).expect("copy as a new name");
    copy(std::slice::from_ref(&tree), &renamed, true).expect("copy into it");
    assert_eq!(describe(&renamed.join("tree")), describe(&tree));
    fs::set_permissions(
        to.path().join("tree/sub/deeper"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("let the temp dir go");
    fs::set_permissions(
        renamed.join("sub/deeper"),
        fs::Permissions::from_mode(0o700),
    )
    .ok();
    fs::set_permissions(
        renamed.join("tree/sub/deeper"),
        fs::Permissions::from_mode(0o700),
    )
    .ok();
}

#[test]
fn targets_resolve_as_cp_does_and_refuse_what_cannot_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::write(&a, b"aaa").expect("write");
    fs::write(&b, b"bbb").expect("write");
    let into = dir.path().join("into");
    fs::create_dir(&into).expect("mkdir");

    copy(&[a.clone(), b.clone()], &into, false).expect("two into a directory");
    assert_eq!(fs::read(into.join("b")).expect("read"), b"bbb");
    copy(std::slice::from_ref(&a), &dir.path().join("new"), false).expect("a new name");
    assert_eq!(fs::read(dir.path().join("new")).expect("read"), b"aaa");
    copy(std::slice::from_ref(&b), &a, false).expect("over a file");
    assert_eq!(fs::read(&a).expect("read"), b"bbb");

    let code = |r: crate::Result<u64>| r.expect_err("refused").code();
    assert_eq!(
        code(copy(&[a.clone(), b.clone()], &b, false)),
        Code::FailedPrecondition
    );
    let nowhere = dir.path().join("nowhere");
    assert_eq!(
        code(copy(&[a.clone(), b.clone()], &nowhere, false)),
        Code::NotFound
    );
    assert_eq!(
        code(copy(std::slice::from_ref(&a), &nowhere.join("x"), false)),
        Code::NotFound
    );
    assert_eq!(
        code(copy(std::slice::from_ref(&a), &b.join("x"), false)),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(copy(std::slice::from_ref(&into), &nowhere, false)),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(copy(std::slice::from_ref(&nowhere), &into, false)),
        Code::NotFound
    );
    // A file whose name is taken by a directory in the target.
    fs::create_dir(into.join("c")).expect("mkdir");
    let c = dir.path().join("c");
    fs::write(&c, b"c").expect("write");
    let refused = copy(std::slice::from_ref(&c), &into, false).expect_err("a directory is there");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("is a directory"), "{refused}");
    assert!(leftovers(&into).is_empty());
}

fn entry(path: &str, kind: EntryKind) -> CopyItem {
    let mut entry = CopyEntry {
        path: path.into(),
        mode: 0o644,
        link_target: "elsewhere".into(),
        ..CopyEntry::default()
    };
    entry.set_kind(kind);
    CopyItem {
        kind: Some(copy_item::Kind::Entry(entry)),
    }
}

fn data(bytes: &'static [u8]) -> CopyItem {
    CopyItem {
        kind: Some(copy_item::Kind::Data(bytes::Bytes::from_static(bytes))),
    }
}

fn end(sha256: Vec<u8>) -> CopyItem {
    CopyItem {
        kind: Some(copy_item::Kind::End(CopyFileEnd { sha256 })),
    }
}

#[test]
fn an_interrupted_or_corrupted_file_leaves_nothing_under_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("f");

    let mut sink = Sink::open(&target, 1).expect("open");
    sink.apply(entry("f", EntryKind::File)).expect("entry");
    sink.apply(data(b"half")).expect("data");
    assert_eq!(leftovers(dir.path()).len(), 1, "written under a temp name");
    drop(sink);
    assert!(!target.exists() && leftovers(dir.path()).is_empty());

    let mut sink = Sink::open(&target, 1).expect("open");
    sink.apply(entry("f", EntryKind::File)).expect("entry");
    sink.apply(data(b"half")).expect("data");
    let err = sink.finish().expect_err("ended mid-file");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(!target.exists() && leftovers(dir.path()).is_empty());

    let mut sink = Sink::open(&target, 1).expect("open");
    sink.apply(entry("f", EntryKind::File)).expect("entry");
    sink.apply(data(b"bytes")).expect("data");
    let err = sink.apply(end(sha(b"other"))).expect_err("digest");
    assert_eq!(err.code(), Code::DataLoss);
    assert!(err.message().contains("SHA-256"), "{err}");
    assert!(!target.exists() && leftovers(dir.path()).is_empty());

    let mut sink = Sink::open(&target, 1).expect("open");
    sink.apply(entry("f", EntryKind::File)).expect("entry");
    sink.apply(data(b"bytes")).expect("data");
    sink.apply(end(sha(b"bytes"))).expect("end");
    assert_eq!(fs::read(&target).expect("read"), b"bytes");
    assert_eq!(mode(&fs::metadata(&target).expect("meta")), 0o644);
}

#[test]
fn a_stream_cannot_write_outside_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("in");
    fs::create_dir(&target).expect("mkdir");
    let refused = |items: Vec<CopyItem>| {
        let mut sink = Sink::open(&target, 1).expect("open");
        items
            .into_iter()
            .try_for_each(|item| sink.apply(item))
            .expect_err("refused")
            .code()
    };
    assert_eq!(
        refused(vec![entry("../x", EntryKind::File)]),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(vec![entry("/etc/x", EntryKind::File)]),
        Code::InvalidArgument
    );
    // Into a directory the stream did not make (here, through a symlink it made).
    assert_eq!(
        refused(vec![
            entry("d", EntryKind::Symlink),
            entry("d/x", EntryKind::File)
        ]),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(vec![
            entry("a", EntryKind::File),
            data(b"x"),
            end(sha(b"x")),
            entry("b", EntryKind::File)
        ]),
        Code::InvalidArgument,
        "more sources than announced"
    );
    assert_eq!(refused(vec![data(b"x")]), Code::InvalidArgument);
}

#[test]
fn sources_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Source::open(&[dir.path().to_owned()], false).expect_err("a directory");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("add -r"), "{err}");
    let err = Source::open(&[dir.path().join("missing")], true).expect_err("missing");
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("missing"), "{err}");
}
