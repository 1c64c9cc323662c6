//! A gRPC client in Python, written from the README alone, against a real cluster: the signing
//! scheme and the services are usable from outside Rust.
//!
//! The interpreter is `$WARREN_PYTHON` (default `python3`) and needs grpcio and grpcio-tools
//! (`tests/python/requirements.txt`); without them the build script marks the test ignored,
//! unless `WARREN_REQUIRE_PYTHON_GRPC` is set (as `.ci/run` does), when the build fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use warren_tests::*;

/// The interpreter the build script checked (`has_python_grpc`).
fn python() -> PathBuf {
    std::env::var_os("WARREN_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

#[tokio::test]
#[cfg_attr(
    not(has_python_grpc),
    ignore = "needs a python with grpcio: pip install -r tests/python/requirements.txt, then WARREN_PYTHON=that python"
)]
async fn a_python_client_written_from_the_readme_works() {
    let cluster = Cluster::with_engines(2).await;
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python());
    command
        .arg(here.join("python/warren_client.py"))
        .arg(&cluster.connection_file)
        .arg(here.join("../proto/proto"));
    let mut client = Proc::spawn("python client", command, cluster.dir().join("python.log"));
    let status = client
        .wait_for_exit(PATIENCE * 3)
        .await
        .expect("the python client finished");
    let output = client.output();
    eprintln!("{output}");
    assert!(status.success(), "the python client failed:\n{output}");
    assert!(output.contains("all checks passed"), "{output}");
}
