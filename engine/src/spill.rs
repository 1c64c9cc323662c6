//! The engine's own spill directory: made inside the directory it is given, removed with only
//! what the engine wrote there.
//!
//! `--spill-dir DIR` (or the runtime directory) is a parent the engine shares with whoever
//! else uses it: the engine creates `engine-<uuid>` inside it (mode 0700, failing rather than
//! taking over anything already there) and, when it exits, removes the spill files it wrote
//! there and that directory if it is then empty. It never removes the directory it was given,
//! nor anything in it that it did not create. What goes into each spill file is the
//! [`crate::outbox`]'s.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use warren_proto::os::PathError;
use warren_proto::os::private_dir::{self, DirError};

/// A spill directory this engine created; removed (with its spill files) on drop.
#[derive(Debug)]
pub struct SpillDir {
    path: PathBuf,
}

impl SpillDir {
    /// Creates a new directory for this engine inside `parent` (which is created if missing
    /// and must be private to this user).
    pub fn create(parent: &Path, uuid: &str) -> Result<Self, DirError> {
        private_dir::prepare(parent)?;
        let first = parent.join(format!("engine-{uuid}"));
        // An engine of the same uuid may still run, or one was killed and left its directory:
        // either way it is not ours to reuse or remove.
        let second = parent.join(format!("engine-{uuid}-{}", std::process::id()));
        let mut last = None;
        for path in [first, second] {
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(e) => {
                    return Err(DirError::Io(PathError {
                        context: "create",
                        path,
                        source: e,
                    }));
                }
            }
        }
        let (path, source) = last.expect("both names were tried");
        Err(DirError::Io(PathError {
            context: "create",
            path,
            source,
        }))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `name` is one of the spill files [`crate::tasks`] writes: `task-<id>-<attempt>.spill`.
fn is_spill_file(name: &str) -> bool {
    name.strip_prefix("task-")
        .and_then(|rest| rest.strip_suffix(".spill"))
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(id, attempt)| {
            !id.is_empty()
                && !attempt.is_empty()
                && id
                    .bytes()
                    .chain(attempt.bytes())
                    .all(|b| b.is_ascii_digit())
        })
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let ours = entry.file_type().is_ok_and(|t| t.is_file())
                    && entry.file_name().to_str().is_some_and(is_spill_file);
                if ours {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        // Not remove_dir_all: whatever else someone put here stays, and so does the directory.
        if let Err(err) = fs::remove_dir(&self.path) {
            tracing::warn!(dir = %self.path.display(), %err, "left the spill directory in place");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_engine_wrote_is_removed() {
        let parent = tempfile::tempdir().expect("tempdir");
        let given = parent.path().join("given");
        fs::create_dir(&given).expect("mkdir");
        fs::set_permissions(&given, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        fs::write(given.join("precious"), b"keep me").expect("write");

        let spill = SpillDir::create(&given, "u1").expect("spill dir");
        let second = SpillDir::create(&given, "u1").expect("a second engine, same uuid");
        assert_ne!(spill.path(), second.path());
        fs::write(spill.path().join("task-7-1.spill"), b"x").expect("spill");
        drop(second);
        drop(spill);
        assert_eq!(
            fs::read(given.join("precious")).expect("the given directory's file"),
            b"keep me"
        );
        assert_eq!(fs::read_dir(&given).expect("read").count(), 1);

        // Something the engine did not write keeps its directory in place.
        let spill = SpillDir::create(&given, "u2").expect("spill dir");
        fs::write(spill.path().join("notes.txt"), b"mine").expect("write");
        let kept = spill.path().to_owned();
        drop(spill);
        assert!(kept.join("notes.txt").exists());
    }

    #[test]
    fn spill_file_names_are_recognised_exactly() {
        assert!(is_spill_file("task-12-1.spill"));
        for other in [
            "task-12.spill",
            "task--1.spill",
            "task-1-1.spill.bak",
            "x-1-1.spill",
        ] {
            assert!(!is_spill_file(other), "{other}");
        }
    }
}
