//! What the warren programs need from the operating system, apart from the wire contract:
//! children that die with their parent, private directories, signal names, sizes and ages as
//! people write them, and (feature `program`) the first steps of every binary.
//!
//! Behind the feature `os`, so that the SDK's users build none of it. The hub and the engines
//! enable `program` (which implies `os`); the CLI enables `os`.
//!
//! ```
//! use warren_proto::os::{signals, units};
//! assert_eq!(signals::parse("TERM"), Ok(15));
//! assert_eq!(units::parse_size("64KiB"), Ok(64 << 10));
//! ```

pub mod child;
pub mod private_dir;
#[cfg(feature = "program")]
pub mod program;
pub mod signals;
pub mod units;

use std::io;
use std::path::{Path, PathBuf};

/// A filesystem call that failed: what was being done, to which path, and what the operating
/// system said. Shared by the errors of everything here that touches paths.
#[derive(Debug, thiserror::Error)]
#[error("cannot {context} {path}: {source}")]
pub struct PathError {
    /// What was being done, as a verb: `create`, `inspect`, `bind`...
    pub context: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: io::Error,
}

impl PathError {
    /// Turns an `io::Error` from doing `context` to `path` into a [`PathError`], for
    /// `map_err`.
    ///
    /// ```
    /// use std::path::Path;
    /// use warren_proto::os::PathError;
    /// let err = std::fs::metadata("/no/such/place")
    ///     .map_err(PathError::at("inspect", Path::new("/no/such/place")))
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("cannot inspect /no/such/place: "));
    /// ```
    pub fn at<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self {
            context,
            path: path.to_owned(),
            source,
        }
    }
}
