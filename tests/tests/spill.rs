//! An engine removes only what it created: `--spill-dir DIR` is a place to work in, not a
//! directory to delete.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use warren_tests::*;

#[tokio::test]
async fn an_engine_leaves_the_spill_dir_it_was_given_and_its_files_in_place() {
    let mut cluster = Cluster::hub();
    let given = cluster.dir().join("my-spill");
    std::fs::create_dir(&given).expect("mkdir");
    std::fs::set_permissions(&given, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(given.join("notes.txt"), b"not the engine's").expect("write");

    let locate = [
        OsStr::new("--connection-file"),
        cluster.connection_file.as_os_str(),
    ];
    let command = cluster.engine_command(&locate, &given);
    cluster.push_engine("warren-engine", command);
    cluster.wait_for_engines(1).await;
    let own: Vec<_> = std::fs::read_dir(&given)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("engine-"))
        .collect();
    assert_eq!(own.len(), 1, "the engine works in a directory of its own");

    let engine = &mut cluster.engines[0];
    engine.signal(rustix::process::Signal::TERM);
    engine.wait_for_success("on SIGTERM").await;
    assert_eq!(
        std::fs::read(given.join("notes.txt")).expect("the file in the given directory"),
        b"not the engine's"
    );
    let left: Vec<_> = std::fs::read_dir(&given)
        .expect("the given directory is still there")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec!["notes.txt"],
        "the engine removed its own directory, only"
    );
}
