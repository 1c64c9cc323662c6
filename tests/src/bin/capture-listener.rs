//! Another user's trap, for the test that the client checks who answers on its socket: listens
//! on a Unix socket, accepts every connection, and appends to a file how many bytes each one
//! was sent before it closed (or fell silent for 5 s).
//!
//! Usage: `capture-listener SOCKET CAPTURE_FILE`.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, capture] = args.as_slice() else {
        eprintln!("usage: capture-listener SOCKET CAPTURE_FILE");
        std::process::exit(64);
    };
    let listener = match UnixListener::bind(socket) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {socket}: {err}");
            std::process::exit(1);
        }
    };
    // Bounded, like everything in the tests: the test kills it long before.
    for conn in listener.incoming().take(1000) {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(capture)
        {
            let _ = writeln!(file, "{}", got.len());
        }
    }
}
