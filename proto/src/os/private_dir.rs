//! Directories only their owner may enter: where the socket and the database live.
//!
//! A directory is created with mode 0700 if missing; an existing one is refused, with the fix,
//! if it is a symlink, belongs to someone else, or is open to group or others (as tmux and
//! ssh do), because anyone who can enter it could swap what the hub puts there.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::PathError;
use crate::private_file::{NotPrivate, check_private};

/// Why a directory can't be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory is a symlink.
    #[error(
        "directory {0} is a symbolic link; refusing to work behind a link someone could redirect. Use the real directory"
    )]
    Symlink(PathBuf),
    /// The path exists and is not a directory.
    #[error("{0} is not a directory")]
    NotDirectory(PathBuf),
    /// Someone else owns the directory.
    #[error(
        "directory {dir} belongs to uid {owner}, not to you (uid {me}); someone else could replace what is in it. Choose another place"
    )]
    WrongOwner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The hub's user.
        me: u32,
    },
    /// Group or others can enter the directory.
    #[error(
        "directory {dir} is open to group or others (mode {mode:04o}); other users could reach what is in it. Run `chmod 700 {dir}` or choose another place"
    )]
    TooOpen {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A filesystem call failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// Creates the directory (and its parents) with mode 0700 if missing, then checks it.
pub fn prepare(dir: &Path) -> Result<(), DirError> {
    if fs::symlink_metadata(dir).is_err() {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            // Another process made it first; it is checked below like any existing directory.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(PathError::at("create", dir)(e).into()),
        }
    }
    check(dir)
}

/// Refuses a directory that is a symlink, owned by someone else, or open to group or others.
///
/// ```
/// use warren_proto::os::private_dir::{self, DirError};
/// let err = private_dir::check(std::path::Path::new("/tmp")).unwrap_err();
/// assert!(matches!(err, DirError::TooOpen { .. } | DirError::WrongOwner { .. }));
/// ```
pub fn check(dir: &Path) -> Result<(), DirError> {
    let meta = fs::symlink_metadata(dir).map_err(PathError::at("inspect", dir))?;
    if !meta.is_dir() && !meta.file_type().is_symlink() {
        return Err(DirError::NotDirectory(dir.to_owned()));
    }
    check_private(&meta).map_err(|why| {
        let dir = dir.to_owned();
        match why {
            NotPrivate::Symlink => DirError::Symlink(dir),
            NotPrivate::WrongOwner { owner, me } => DirError::WrongOwner { dir, owner, me },
            NotPrivate::TooOpen { mode } => DirError::TooOpen { dir, mode },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_directory() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("a/b");
        prepare(&dir).expect("prepare");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn refuses_open_and_linked_directories() {
        let base = tempfile::tempdir().expect("tempdir");
        let open = base.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = prepare(&open).expect_err("0755 must be refused");
        assert!(err.to_string().contains("chmod 700"), "{err}");

        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).expect("symlink");
        let err = prepare(&link).expect_err("a symlink must be refused");
        assert!(matches!(err, DirError::Symlink(_)), "{err}");
    }
}
