//! A client process that opens many follow streams on one task and reads none of them, for
//! the tests that bound what followers make the hub hold.
//!
//! Usage: `follow-flood CONNECTION_FILE TASK_ID COUNT`. Prints `opened N refused M` once every
//! stream is open (or refused), then waits to be killed.

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, task, count] = args.as_slice() else {
        eprintln!("usage: follow-flood CONNECTION_FILE TASK_ID COUNT");
        std::process::exit(64);
    };
    let (Ok(task), Ok(count)) = (task.parse::<u64>(), count.parse::<usize>()) else {
        eprintln!("TASK_ID and COUNT are numbers");
        std::process::exit(64);
    };
    let client = match warren::Client::connect(file).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("cannot connect: {err}");
            std::process::exit(1);
        }
    };
    let (mut streams, mut refused) = (Vec::new(), 0);
    for _ in 0..count {
        match client.follow(task, 0).await {
            Ok(events) => streams.push(events),
            Err(err) => {
                refused += 1;
                if refused == 1 {
                    eprintln!("refused: {err}");
                }
            }
        }
    }
    println!("opened {} refused {refused}", streams.len());
    // Bounded, like everything in the tests; the test kills it long before.
    tokio::time::sleep(Duration::from_secs(600)).await;
}
