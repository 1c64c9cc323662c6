//! `warren-engine`: parse the flags, start logging, serve the hub until told to stop.

use std::process::ExitCode;
use warren_engine::config::EngineConfig;
use warren_proto::os::program;

fn main() -> ExitCode {
    let config: EngineConfig = match program::parse_flags() {
        Ok(config) => config,
        Err(code) => return code,
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
    program::start_logging(config.log.as_deref());
    let runtime = match program::runtime() {
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
