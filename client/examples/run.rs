//! Runs `uname -a` on every engine of the hub in `$WARREN_CONNECTION_FILE` (or the default
//! one) and prints each engine's output as it arrives.
//!
//! ```sh
//! warren cluster start -n 2 &
//! cargo run -p warren --example run
//! ```

use warren::proto::task_event::Kind;
use warren::{Client, Job};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), warren::Error> {
    let client = Client::connect_default().await?;
    let mut events = client.run(Job::argv(["uname", "-a"]).all()).await?;
    let mut all_succeeded = true;
    while let Some(event) = events.message().await? {
        match event.kind {
            Some(Kind::Output(chunk)) => {
                print!(
                    "[engine {}] {}",
                    event.engine_id,
                    String::from_utf8_lossy(&chunk.data)
                );
            }
            Some(Kind::Result(result)) => {
                all_succeeded &= result.state() == warren::proto::TaskState::Succeeded;
                println!(
                    "task {} on engine {}: {}",
                    event.task_id,
                    event.engine_id,
                    result.state().label()
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
