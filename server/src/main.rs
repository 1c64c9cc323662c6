//! `warren-hub`: set the allocator, parse the flags, start logging, serve until told to stop.

use std::process::ExitCode;
use warren_hub::HubConfig;
use warren_proto::os::program;

fn main() -> ExitCode {
    program::keep_freed_memory();
    let config: HubConfig = match program::parse_flags() {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(err) = config.check() {
        eprintln!("warren-hub: {err}");
        return ExitCode::from(64);
    }
    let log = config.log.clone();
    program::serve("warren-hub", log.as_deref(), warren_hub::run(config))
}
