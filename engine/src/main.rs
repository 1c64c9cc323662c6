//! `warren-engine`: set the allocator, parse the flags, start logging, serve the hub until told to stop.

use std::process::ExitCode;
use warren_engine::config::EngineConfig;
use warren_proto::os::program;

fn main() -> ExitCode {
    program::keep_freed_memory();
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
    let log = config.log.clone();
    program::serve("warren-engine", log.as_deref(), warren_engine::run(config))
}
