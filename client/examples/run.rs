//! Runs `uname -a` on every engine of the hub the environment names
//! (`$WARREN_CONNECTION_FILE`, ..., else the default connection file) and prints each engine's
//! output as it arrives.
//!
//! ```sh
//! warren cluster start -n 2 &
//! cargo run -p warren --example run
//! ```

use futures_util::TryStreamExt;
use warren::{ClientBuilder, EventKind, Job};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), warren::Error> {
    let client = ClientBuilder::from_env().connect().await?;
    let mut events = client.run(Job::argv(["uname", "-a"]).all()).await?;
    let mut all_succeeded = true;
    while let Some(event) = events.try_next().await? {
        match event.kind {
            EventKind::Output { data, .. } => {
                print!(
                    "[engine {}] {}",
                    event.engine_id,
                    String::from_utf8_lossy(&data)
                );
            }
            EventKind::Result(outcome) => {
                all_succeeded &= outcome.succeeded();
                println!(
                    "task {} on engine {}: {}",
                    event.task_id,
                    event.engine_id,
                    outcome.state.label()
                );
            }
            _ => {}
        }
    }
    if !all_succeeded {
        std::process::exit(1);
    }
    Ok(())
}
