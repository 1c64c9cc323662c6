//! The first steps every warren program takes: set its allocator, read its flags, start its
//! log, make its runtime. Behind the `program` feature, so that the SDK's users don't build
//! clap's and tracing's formatting for nothing.

use std::process::ExitCode;

/// Parses the command line. On failure clap's message is printed and the exit code comes
/// back: 64 (EX_USAGE) for a usage error, 0 for `--help` and `--version`.
pub fn parse_flags<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|err| {
        let usage_error = err.use_stderr();
        let _ = err.print();
        if usage_error {
            ExitCode::from(64)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Logs to stderr with the filter `log` (a `--log` flag), else `RUST_LOG`'s, else `info`.
/// A flag lets `warren cluster start` choose its children's level without putting
/// `RUST_LOG` into their environment, and so into every task's.
pub fn start_logging(log: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match log {
        Some(filter) => EnvFilter::new(filter),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for people; logs in files and pipes stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Blocks at least this large are mapped on their own: larger than any HTTP/2 frame.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of the heap is given back only beyond this much.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 64 << 20;
/// What the heap grows by beyond each request, so that a stream does not grow it chunk by
/// chunk.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 4 << 20;

/// Makes glibc's allocator keep the memory it frees for the next buffer; to be called first
/// thing, before other threads allocate.
///
/// A stream passes through buffers of up to 2 MiB in each program (HTTP/2 frames as they are
/// read, output chunks). By default glibc gives every free block at the top of the heap back
/// to the system at once, and maps the largest buffers anew each time, so each MiB of a stream
/// was faulted in and zeroed by the kernel again, in every process it passed through. The
/// memory kept is bounded by the thresholds above, and the hub still gives back what a burst
/// of tasks leaves (`malloc_trim` ignores them).
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (option, value) in [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (libc::M_TOP_PAD, TOP_PAD),
    ] {
        // SAFETY: mallopt only changes the allocator's settings; it takes no pointer and locks
        // the allocator while it does. A value it refuses leaves glibc's default, which works.
        unsafe {
            libc::mallopt(option, value);
        }
    }
}

/// Starts logging with the filter `log`, then runs `serve` to its end on [`runtime`]; an error
/// is printed as `NAME: error` and exits 1, as does a runtime that cannot start.
pub fn serve<F, E>(name: &str, log: Option<&str>, serve: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    start_logging(log);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime every warren program runs on: one thread. Their work is waiting on sockets,
/// pipes and children and moving bytes, and one thread avoids a cross-core wake-up per message.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
