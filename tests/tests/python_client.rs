//! A gRPC client in Python, written from the README alone, against a real cluster: the signing
//! scheme and the services are usable from outside Rust.
//!
//! The interpreter is `$WARREN_PYTHON` (default `python3`) and needs grpcio and grpcio-tools
//! (`tests/python/requirements.txt`); without them the test skips loudly, unless
//! `WARREN_REQUIRE_PYTHON_GRPC` is set (as `.ci/run` does), when it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use warren_tests::*;

fn python_with_grpc() -> Option<PathBuf> {
    let python = std::env::var_os("WARREN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let usable = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .is_ok_and(|out| out.status.success());
    if usable {
        return Some(python);
    }
    assert!(
        std::env::var_os("WARREN_REQUIRE_PYTHON_GRPC").is_none(),
        "{} with grpcio and grpcio-tools is required (WARREN_REQUIRE_PYTHON_GRPC is set)",
        python.display()
    );
    eprintln!(
        "\n*** SKIPPED: {} has no grpcio/grpcio-tools; set WARREN_PYTHON to one that does ***\n",
        python.display()
    );
    None
}

#[tokio::test]
async fn a_python_client_written_from_the_readme_works() {
    let Some(python) = python_with_grpc() else {
        return;
    };
    let cluster = Cluster::with_engines(2).await;
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python);
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
