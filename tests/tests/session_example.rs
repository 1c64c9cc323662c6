//! The SDK's session example (`client/examples/session.rs`) against a real cluster.

use std::process::Command;
use warren_tests::*;

#[tokio::test]
#[cfg_attr(not(has_python3), ignore = "needs python3: apt-get install python3")]
async fn the_session_example_runs_cells_that_share_state() {
    let cluster = Cluster::with_engines(1).await;
    let output = Command::new(binary("examples/session"))
        .env("WARREN_CONNECTION_FILE", &cluster.connection_file)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.starts_with("session 1 on engine 1: Python 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("In [1]: x = 6 * 7\nprint('x is set')\nx is set\n"),
        "{stdout}"
    );
    assert!(stdout.contains("In [2]: x\nOut[2]: 42\n"), "{stdout}");
    assert!(
        stdout.contains("ZeroDivisionError: division by zero"),
        "{stdout}"
    );
    let sessions = cluster
        .client()
        .await
        .list_sessions("", false)
        .await
        .expect("list");
    assert!(
        sessions.is_empty(),
        "the example closes its session: {sessions:?}"
    );
}
