//! Opens a Python session on an engine of the hub the environment names
//! (`$WARREN_CONNECTION_FILE`, ..., else the default connection file), runs cells in it as
//! they come, and prints what each wrote and how it ended, as IPython would.
//!
//! ```sh
//! warren cluster start -n 2 &
//! cargo run -p warren --example session
//! ```

use futures_util::TryStreamExt;
use warren::{CellEvent, CellResult, ClientBuilder, SessionOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), warren::Error> {
    let client = ClientBuilder::from_env().connect().await?;
    let session = client.open_session(SessionOptions::python()).await?;
    println!(
        "session {} on engine {}: {}",
        session.id(),
        session.engine_id(),
        session.info().banner
    );
    let mut failed = false;
    for (n, code) in ["x = 6 * 7\nprint('x is set')", "x", "1 / 0"]
        .into_iter()
        .enumerate()
    {
        println!("In [{}]: {code}", n + 1);
        let mut cell = session.execute(code).await?;
        while let Some(event) = cell.try_next().await? {
            match event {
                CellEvent::Output { data, .. } => print!("{}", String::from_utf8_lossy(&data)),
                CellEvent::Done { result, .. } => match result {
                    CellResult::Ok { value_repr } if value_repr.is_empty() => {}
                    CellResult::Ok { value_repr } => println!("Out[{}]: {value_repr}", n + 1),
                    CellResult::Error { name, value, .. } => println!("{name}: {value}"),
                    CellResult::Failed(outcome) => {
                        failed = true;
                        println!("the cell did not end: {}", outcome.error);
                    }
                },
            }
        }
    }
    session.close().await?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
