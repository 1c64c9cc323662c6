//! The first steps every warren program takes: read its flags, start its log, make its
//! runtime. Behind the `program` feature, so that the SDK's users don't build clap's and
//! tracing's formatting for nothing.

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
