//! `warren-hub`: parse the flags, start logging, serve until told to stop.

use std::process::ExitCode;
use warren_hub::HubConfig;
use warren_proto::os::program;

fn main() -> ExitCode {
    let config: HubConfig = match program::parse_flags() {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(err) = config.check() {
        eprintln!("warren-hub: {err}");
        return ExitCode::from(64);
    }
    program::start_logging(config.log.as_deref());
    let runtime = match program::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warren-hub: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(warren_hub::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warren-hub: {err:#}");
            ExitCode::FAILURE
        }
    }
}
