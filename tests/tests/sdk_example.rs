//! The SDK's runnable example (`client/examples/run.rs`) against a real cluster.

use std::process::Command;
use warren_tests::*;

#[tokio::test]
async fn the_run_example_prints_each_engines_output() {
    let cluster = Cluster::with_engines(2).await;
    let example = binary("examples/run");
    let output = Command::new(example)
        .env("WARREN_CONNECTION_FILE", &cluster.connection_file)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for engine in [1, 2] {
        assert!(
            stdout.contains(&format!("[engine {engine}] Linux")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("on engine {engine}: succeeded")),
            "{stdout}"
        );
    }
}
