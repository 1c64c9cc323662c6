//! `warren-engine`: parse the flags, start logging, serve the hub until told to stop.

use clap::Parser;
use std::process::ExitCode;
use warren_engine::config::EngineConfig;

fn main() -> ExitCode {
    let config = match EngineConfig::try_parse() {
        Ok(config) => config,
        Err(err) => {
            let usage_error = err.use_stderr();
            let _ = err.print();
            return if usage_error {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(engine) = config.guard {
        return match warren_engine::process::guard(engine) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("warren-engine guard: {err}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for people; logs in files and pipes stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One thread: the engine's work is waiting on children and moving bytes, and a single
    // thread avoids cross-core wake-ups on every chunk.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warren-engine: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(warren_engine::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warren-engine: {err:#}");
            ExitCode::FAILURE
        }
    }
}
