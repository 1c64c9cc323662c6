//! Files only their owner may read: the key file and the connection file.
//!
//! Reading refuses, as ssh does with private keys, a file that is a symlink, owned by someone
//! else, or open to group or others. Writing creates the file with mode 0600 from the start
//! and moves it into place atomically, so no one ever sees it half written or too open.
//!
//! [`check_private`] is the one owner-and-mode check of every warren program: for these files,
//! for private directories (`os::private_dir`, feature `os`) and for the hub's database.

use std::fs::{self, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file or directory is not private to the current user. Each caller wraps it in its
/// own error, with the fix that suits what the path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotPrivate {
    /// It is a symbolic link, which someone could redirect.
    #[error("a symbolic link")]
    Symlink,
    /// Someone else owns it.
    #[error("owned by uid {owner}, not by you (uid {me})")]
    WrongOwner {
        /// Its owner.
        owner: u32,
        /// The current (effective) user.
        me: u32,
    },
    /// Group or others have some access to it.
    #[error("open to group or others (mode {mode:04o})")]
    TooOpen {
        /// Its permission bits.
        mode: u32,
    },
}

/// Checks that `meta` (from [`fs::symlink_metadata`], so that a link is seen as one) describes
/// something only the current user can reach: not a symlink, owned by this user, and with no
/// permission bit for group or others.
///
/// ```
/// use warren_proto::private_file::{NotPrivate, check_private};
/// let meta = std::fs::symlink_metadata("/tmp").unwrap();
/// // /tmp is open to everyone (and owned by root).
/// assert!(matches!(
///     check_private(&meta),
///     Err(NotPrivate::TooOpen { .. } | NotPrivate::WrongOwner { .. })
/// ));
/// ```
pub fn check_private(meta: &Metadata) -> Result<(), NotPrivate> {
    if meta.file_type().is_symlink() {
        return Err(NotPrivate::Symlink);
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(NotPrivate::WrongOwner {
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(NotPrivate::TooOpen { mode });
    }
    Ok(())
}

/// Why a private file was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is a symbolic link.
    #[error(
        "{path} is a symbolic link; refusing to follow it for a secret. Point at the real file instead"
    )]
    Symlink {
        /// The file.
        path: PathBuf,
    },
    /// Someone else owns the file.
    #[error("{path} is owned by uid {owner}, not by you (uid {me}); refusing to trust it")]
    WrongOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The current user.
        me: u32,
    },
    /// Group or others may read or write the file.
    #[error(
        "permissions {mode:04o} for {path} are too open: it holds a secret. Run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a file after checking that only its owner, the current user, can reach it.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("secret");
/// warren_proto::private_file::write(&path, b"hello")?;
/// assert_eq!(warren_proto::private_file::read(&path)?, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read(path: &Path) -> Result<String, PrivateFileError> {
    let meta = fs::symlink_metadata(path).map_err(io_error(path))?;
    check_private(&meta).map_err(|why| {
        let path = path.to_owned();
        match why {
            NotPrivate::Symlink => PrivateFileError::Symlink { path },
            NotPrivate::WrongOwner { owner, me } => {
                PrivateFileError::WrongOwner { path, owner, me }
            }
            NotPrivate::TooOpen { mode } => PrivateFileError::TooOpen { path, mode },
        }
    })?;
    fs::read_to_string(path).map_err(io_error(path))
}

/// Writes `contents` to `path` with mode 0600, replacing any old file atomically.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), PrivateFileError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask can only remove bits, but make the mode exact regardless.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_private_and_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, b"hello").expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).expect("read"), "hello");
    }

    #[test]
    fn open_files_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write(&path, b"hello").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = read(&path).expect_err("group-readable file must be refused");
        assert!(err.to_string().contains("too open"), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        let err = read(&link).expect_err("symlink must be refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
