//! One signature is good for one call on one hub instance: the hub id is new at every start,
//! so a header used once is refused after a restart and at another hub sharing the key file,
//! while the SDK, engines and `warren sign` follow the new id without anyone's help.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use tonic::Code;
use warren::proto::ListEnginesRequest;
use warren::proto::control_client::ControlClient;
use warren_proto::connection::ConnectionInfo;
use warren_tests::*;

const LIST_ENGINES: &str = "/warren.v1.Control/ListEngines";

fn new_key_file(dir: &Path) -> PathBuf {
    let key = dir.join("key");
    let status = Command::new(binary("warren-hub"))
        .arg("--new-key-file")
        .arg(&key)
        .status()
        .expect("warren-hub --new-key-file");
    assert!(status.success());
    key
}

async fn list_engines(cluster: &Cluster, header: &str) -> Result<(), tonic::Status> {
    let mut client = ControlClient::new(cluster.channel_with_header(Some(header.into())).await);
    client.list_engines(ListEnginesRequest {}).await.map(|_| ())
}

fn hub_id(cluster: &Cluster) -> String {
    ConnectionInfo::load(&cluster.connection_file)
        .expect("connection file")
        .hub_id
}

/// An engine that knows only the socket and the key file, as under Slurm.
fn add_keyed_engine(cluster: &mut Cluster, key: &Path) {
    let spill = cluster
        .dir()
        .join(format!("spill-{}", cluster.engines.len()));
    let locate = [
        OsStr::new("--socket"),
        cluster.socket.as_os_str(),
        OsStr::new("--key-file"),
        key.as_os_str(),
    ];
    let mut command = cluster.engine_command(&locate, &spill);
    command
        .args(["--max-backoff-ms", "200"])
        .env_remove("WARREN_CONNECTION_FILE");
    cluster.push_engine("keyed warren-engine", command);
}

#[tokio::test]
async fn a_header_used_once_is_refused_after_a_restart_and_the_sdk_and_engines_follow() {
    let mut cluster = Cluster::empty();
    let key = new_key_file(cluster.dir());
    let key_arg = key.to_str().expect("utf-8").to_owned();
    cluster.start_hub(&["--key-file", &key_arg]);
    add_keyed_engine(&mut cluster, &key);
    cluster.wait_for_engines(1).await;
    let client = cluster.client().await;
    let first_id = hub_id(&cluster);

    let header = cluster.signer().sign(LIST_ENGINES);
    list_engines(&cluster, &header).await.expect("first use");

    // The same key file, the same socket, the same database: only the start is new.
    cluster.hub = None;
    cluster.start_hub(&["--key-file", &key_arg]);
    let second_id = hub_id(&cluster);
    assert_ne!(first_id, second_id, "the hub id must be new at every start");
    let status = list_engines(&cluster, &header)
        .await
        .expect_err("a header used before the restart");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().starts_with("bad signature"), "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get(warren_proto::auth::HUB_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(second_id.as_str()),
        "the refusal names the new id"
    );

    // The engine (socket and key only) registers again, and the old client goes on working.
    cluster.wait_for_engines(1).await;
    let engines = client.engines().await.expect("the SDK follows the new id");
    assert_eq!(engines.len(), 1);
    assert_eq!(&*client.signer().hub_id(), second_id.as_str());

    // `warren sign` with only the socket and the key learns the id with one probe.
    let output = Command::new(binary("warren"))
        .arg("--socket")
        .arg(&cluster.socket)
        .arg("--key-file")
        .arg(&key)
        .args(["sign", LIST_ENGINES])
        .env_remove("WARREN_CONNECTION_FILE")
        .output()
        .expect("warren sign");
    assert!(output.status.success(), "{output:?}");
    let line = String::from_utf8_lossy(&output.stdout);
    let header = line
        .trim()
        .strip_prefix("authorization: ")
        .expect("an authorization line");
    list_engines(&cluster, header)
        .await
        .expect("warren sign's header passes");
}

#[tokio::test]
async fn two_hubs_from_one_key_file_refuse_each_others_headers() {
    let mut first = Cluster::empty();
    let key = new_key_file(first.dir());
    let key_arg = key.to_str().expect("utf-8").to_owned();
    first.start_hub(&["--key-file", &key_arg]);
    let mut second = Cluster::empty();
    second.start_hub(&["--key-file", &key_arg]);
    assert_ne!(hub_id(&first), hub_id(&second));

    for (from, to) in [(&first, &second), (&second, &first)] {
        let header = from.signer().sign(LIST_ENGINES);
        let status = list_engines(to, &header)
            .await
            .expect_err("a header made for the other hub");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().starts_with("bad signature"), "{status:?}");
        list_engines(from, &header)
            .await
            .expect("it passes at its own hub");
    }
}
