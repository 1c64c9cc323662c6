//! Entry paths and the metadata a copy keeps: permission bits and modification times.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{CopyError, Result};

/// The permission bits a copy keeps (not setuid, setgid or sticky, as `cp` without `-p`).
pub const MODE_BITS: u32 = 0o777;
/// The longest entry path a stream may carry.
pub const MAX_PATH: usize = 4096;

/// A file's permission bits.
pub(crate) fn mode(meta: &Metadata) -> u32 {
    meta.mode() & MODE_BITS
}

/// A file's modification time, nanoseconds since the Unix epoch.
pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Sets the modification time of `path` (of a symlink itself, not its target), leaving the
/// access time as it is.
pub(crate) fn set_mtime(path: &Path, mtime_ns: i64) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, utimensat};
    utimensat(CWD, path, &timestamps(mtime_ns), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Timestamps that set the modification time and leave the access time alone.
pub(crate) fn timestamps(mtime_ns: i64) -> rustix::fs::Timestamps {
    rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    }
}

/// Checks an entry path from a stream and turns it into a relative path: '/'-separated
/// names, none empty, `.` or `..`, so that it can only name something under the target.
pub fn entry_path(path: &str) -> Result<PathBuf> {
    if path.is_empty() || path.len() > MAX_PATH || path.contains('\0') {
        return Err(CopyError::invalid(format!(
            "the copy stream named an entry {path:?}: entry paths are 1 to {MAX_PATH} bytes, without NUL"
        )));
    }
    let plain =
        !path.starts_with('/') && path.split('/').all(|name| !matches!(name, "" | "." | ".."));
    if !plain {
        return Err(CopyError::invalid(format!(
            "the copy stream named an entry {path:?}: entry paths are relative, without empty, `.` or `..` names"
        )));
    }
    Ok(PathBuf::from(path))
}

/// The name a source is copied under: its last component, or for `.` and `..` the name of
/// the directory they stand for.
pub(crate) fn source_name(path: &Path) -> Result<String> {
    let named = match path.file_name() {
        Some(name) if path.components().next_back() != Some(Component::CurDir) => {
            Some(name.to_owned())
        }
        _ => std::fs::canonicalize(path)
            .map_err(|err| CopyError::io("read", path, &err))?
            .file_name()
            .map(ToOwned::to_owned),
    };
    let name = named.ok_or_else(|| {
        CopyError::invalid(format!(
            "cannot copy {} as a whole; name the directories in it instead",
            path.display()
        ))
    })?;
    name.into_string().map_err(|name| {
        CopyError::invalid(format!(
            "{} is not UTF-8; rename it to copy it",
            Path::new(&name).display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_under_the_target() {
        for good in ["a", "a/b", "a/b c/d.txt", ".hidden/x"] {
            assert_eq!(entry_path(good).expect(good), PathBuf::from(good));
        }
        for bad in [
            "", "/a", "a/../b", "..", ".", "a/./b", "a//b", "a/", "a\0b", "./a",
        ] {
            let err = entry_path(bad).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        assert!(entry_path(&"x".repeat(MAX_PATH + 1)).is_err());
    }

    #[test]
    fn sources_are_named_after_their_last_component() {
        assert_eq!(
            source_name(Path::new("/tmp/a.txt")).ok(),
            Some("a.txt".into())
        );
        assert_eq!(source_name(Path::new("dir/")).ok(), Some("dir".into()));
        let here = std::env::current_dir().expect("cwd");
        let name = here
            .file_name()
            .expect("named")
            .to_string_lossy()
            .into_owned();
        assert_eq!(source_name(Path::new(".")).ok(), Some(name));
        assert!(source_name(Path::new("/")).is_err());
    }

    #[test]
    fn mtimes_round_trip_to_the_nanosecond_even_on_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("nowhere", &link).expect("symlink");
        let when = 1_234_567_890_123_456_789;
        set_mtime(&link, when).expect("set mtime");
        assert_eq!(
            mtime_ns(&std::fs::symlink_metadata(&link).expect("meta")),
            when
        );
    }
}
