//! The end-to-end test harness: real `warren-hub` and `warren-engine` processes on a socket in
//! a temp dir, real gRPC. Everything a test starts is killed when its [`Cluster`] drops, even
//! when the test panics, and the logs of a failed test's processes are printed.

pub mod events;
pub mod expect;
pub mod files;
pub mod process;
pub mod procfs;
pub mod raw;
pub mod sessions;
pub mod slurm;
pub mod slurm_engines;
pub mod sshd;
pub mod terminal;

pub use events::*;
pub use expect::*;
pub use process::*;
pub use procfs::*;
pub use sessions::*;
pub use terminal::*;
