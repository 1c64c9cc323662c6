//! `warren cp` against a real hub and engines: a gibibyte up and back, a tree with its modes
//! and times, copies killed halfway, the errors a user meets, `--no-files` and `--all:PATH`.

use rustix::process::Signal;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tonic::Code;
use warren::{CopyOptions, CopyTo};
use warren_tests::files::*;
use warren_tests::*;

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs `warren cp ARGS`, expecting success.
fn cp(cluster: &Cluster, args: &[&str]) {
    let mut full = vec!["cp"];
    full.extend_from_slice(args);
    let (status, stdout, stderr) = cluster.cli(&full);
    assert_eq!(status, 0, "warren {full:?}:\n{stdout}{stderr}");
}

fn set_mtime(path: &Path, seconds: i64, nanos: i64) {
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: seconds,
            tv_nsec: nanos,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("set mtime");
}

/// 1 GiB, mostly holes: about 10-25 s up and back in a debug build on two busy cores (the
/// hub and engine relay every byte, and both ends hash it).
#[tokio::test]
async fn a_gibibyte_goes_up_and_back_unchanged() {
    let cluster = Cluster::with_engines(1).await;
    let dir = cluster.dir();
    let (up, down) = (dir.join("up"), dir.join("down"));
    fs::create_dir(&up).expect("mkdir");
    fs::create_dir(&down).expect("mkdir");
    let source = dir.join("gib");
    sparse_file(&source, 1 << 30, 7);

    cp(
        &cluster,
        &["-q", path(&source), &format!("1:{}/", path(&up))],
    );
    cp(
        &cluster,
        &["-q", &format!("1:{}", path(&up.join("gib"))), path(&down)],
    );

    let want = sha256_file(&source);
    assert_eq!(sha256_file(&up.join("gib")), want, "the engine's copy");
    assert_eq!(sha256_file(&down.join("gib")), want, "the copy back");
    assert_eq!(fs::metadata(down.join("gib")).expect("meta").len(), 1 << 30);
    for copy in [&source, &up.join("gib"), &down.join("gib")] {
        fs::remove_file(copy).expect("remove the big file");
    }
}

#[tokio::test]
async fn a_tree_keeps_its_modes_mtimes_and_links_both_ways() {
    let cluster = Cluster::with_engines(1).await;
    let dir = cluster.dir();
    let src = dir.join("project");
    fs::create_dir_all(src.join("bin")).expect("mkdir");
    fs::create_dir_all(src.join("data/empty")).expect("mkdir");
    let files = [
        ("README", b"hello\n".to_vec(), 0o644, 1_600_000_000, 1),
        (
            "bin/run",
            b"#!/bin/sh\necho run\n".to_vec(),
            0o755,
            1_500_000_000,
            999_999_999,
        ),
        (
            "data/blob",
            (0..700_000u32).map(|i| (i % 253) as u8).collect(),
            0o640,
            1_400_000_000,
            5,
        ),
        ("data/nothing", Vec::new(), 0o600, 1_300_000_000, 0),
    ];
    for (name, bytes, mode, secs, nanos) in &files {
        let file = src.join(name);
        fs::write(&file, bytes).expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode)).expect("chmod");
        set_mtime(&file, *secs, *nanos);
    }
    std::os::unix::fs::symlink("../README", src.join("bin/readme")).expect("symlink");
    set_mtime(&src.join("bin/readme"), 1_200_000_000, 7);
    for (name, mode, secs) in [
        ("bin", 0o750, 1_100_000_000),
        ("data/empty", 0o700, 1_000_000_000),
        ("data", 0o755, 900_000_000),
    ] {
        fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
        set_mtime(&src.join(name), secs, 3);
    }
    let want = tree(&src);

    let remote = dir.join("remote");
    fs::create_dir(&remote).expect("mkdir");
    cp(
        &cluster,
        &["-r", path(&src), &format!("1:{}", path(&remote))],
    );
    assert_eq!(tree(&remote.join("project")), want, "on the engine");

    // Back, under a new name (the destination does not exist yet).
    let back = dir.join("back");
    cp(
        &cluster,
        &[
            "-r",
            &format!("1:{}", path(&remote.join("project"))),
            path(&back),
        ],
    );
    assert_eq!(tree(&back), want, "back here");
    assert!(leftovers(&remote.join("project")).is_empty() && leftovers(&back).is_empty());
}

#[tokio::test]
async fn an_upload_killed_halfway_leaves_nothing_under_the_real_name() {
    let cluster = Cluster::with_engines(1).await;
    let dst = cluster.dir().join("dst");
    fs::create_dir(&dst).expect("mkdir");
    let mut fifo = Fifo::new(cluster.dir().join("stream"));
    let mut command = cluster.cli_command();
    command.args([
        "cp",
        "-q",
        path(&fifo.path),
        &format!("1:{}", path(&dst.join("out"))),
    ]);
    let mut client = Proc::spawn("warren cp", command, cluster.dir().join("cp.log"));

    fifo.feed(&vec![7u8; 1 << 20]).await;
    wait_for_partial_copy(&dst, 1 << 20).await;
    client.signal(Signal::KILL);
    client
        .wait_for_exit(PATIENCE)
        .await
        .expect("the client died");

    // The hub sees the client gone and cancels; the engine removes its temporary file.
    wait_for_nothing_left(&dst, "out").await;
    fifo.close();
}

#[tokio::test]
async fn a_download_interrupted_halfway_leaves_nothing_under_the_real_name() {
    let cluster = Cluster::with_engines(1).await;
    let here = cluster.dir().join("here");
    fs::create_dir(&here).expect("mkdir");
    let mut fifo = Fifo::new(cluster.dir().join("remote-stream"));
    let mut command = cluster.cli_command();
    command.args([
        "cp",
        "-q",
        &format!("1:{}", path(&fifo.path)),
        path(&here.join("out")),
    ]);
    let mut client = Proc::spawn("warren cp", command, cluster.dir().join("cp.log"));

    fifo.feed(&vec![9u8; 1 << 20]).await;
    wait_for_partial_copy(&here, 1 << 20).await;
    client.signal(Signal::INT);
    let status = client
        .wait_for_exit(PATIENCE)
        .await
        .expect("warren cp exits on SIGINT");
    assert_eq!(status.code(), Some(130), "{}", client.output());
    assert!(
        client.output().contains("interrupted"),
        "{}",
        client.output()
    );
    wait_for_nothing_left(&here, "out").await;
    fifo.close();
}

#[tokio::test]
async fn errors_say_what_went_wrong_with_the_right_code() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let dir = cluster.dir();
    let file = dir.join("file.txt");
    fs::write(&file, b"text").expect("write");
    let a_dir = dir.join("a-dir");
    fs::create_dir_all(a_dir.join("file.txt")).expect("mkdir");
    let options = CopyOptions::new();
    let upload = |to: &Path| {
        let sources = vec![file.clone(), file.clone()];
        let single = sources[..1].to_vec();
        let client = client.clone();
        let options = options.clone();
        let to = path(to).to_owned();
        async move {
            let both = client
                .upload(&sources, CopyTo::Engine(1), &to, &options)
                .await;
            let one = client
                .upload(&single, CopyTo::Engine(1), &to, &options)
                .await;
            (both, one)
        }
    };
    let code = |result: Result<_, warren::Error>| {
        let err = result.expect_err("refused");
        let status = err.status().expect("a status").clone();
        (status.code(), status.message().to_owned())
    };

    // A missing path, either way.
    let missing = dir.join("no/such/dir");
    let (code_, message) = code(upload(&missing).await.1.map(|_| ()));
    assert_eq!(code_, Code::NotFound, "{message}");
    assert!(
        message.contains("does not exist") && message.contains("engine 1"),
        "{message}"
    );
    let (code_, message) = code(
        client
            .download(1, path(&missing), dir, &options)
            .await
            .map(|_| ()),
    );
    assert_eq!(code_, Code::NotFound, "{message}");
    assert!(message.contains("check the path"), "{message}");

    // A directory without -r, and a directory in the way of a file.
    let (code_, message) = code(
        client
            .download(1, path(&a_dir), &dir.join("x"), &options)
            .await
            .map(|_| ()),
    );
    assert_eq!(code_, Code::FailedPrecondition, "{message}");
    assert!(message.contains("add -r"), "{message}");
    let (code_, message) = code(upload(&a_dir).await.1.map(|_| ()));
    assert_eq!(code_, Code::FailedPrecondition, "{message}");
    assert!(message.contains("is a directory"), "{message}");

    // Not a directory: several sources onto a file, or a path through one.
    let (code_, message) = code(upload(&file).await.0.map(|_| ()));
    assert_eq!(code_, Code::FailedPrecondition, "{message}");
    assert!(message.contains("not a directory"), "{message}");
    let (code_, message) = code(upload(&file.join("x")).await.1.map(|_| ()));
    assert_eq!(code_, Code::FailedPrecondition, "{message}");

    // The CLI says the same, and exits 1.
    let (status, _, stderr) = cluster.cli(&["cp", &format!("1:{}", path(&a_dir)), path(dir)]);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        stderr.contains("warren: engine 1: ") && stderr.contains("add -r"),
        "{stderr}"
    );
    // Nothing was left behind by any of it.
    assert!(leftovers(dir).is_empty() && leftovers(&a_dir).is_empty());
}

#[tokio::test]
async fn permission_denied_is_the_engines_users() {
    let mut cluster = Cluster::hub();
    let Some(_) = engine_bound_by_permissions(&mut cluster) else {
        return;
    };
    cluster.wait_for_engines(1).await;
    let dir = cluster.dir();
    let locked = dir.join("locked");
    fs::create_dir(&locked).expect("mkdir");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).expect("chmod");
    let secret = dir.join("secret");
    fs::write(&secret, b"s").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    let file = dir.join("file");
    fs::write(&file, b"f").expect("write");

    let (status, _, stderr) = cluster.cli(&["cp", path(&file), &format!("1:{}/", path(&locked))]);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        stderr.contains("permission denied") && stderr.contains(path(&locked)),
        "{stderr}"
    );
    let (status, _, stderr) = cluster.cli(&["cp", &format!("1:{}", path(&secret)), path(dir)]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("permission denied to uid"), "{stderr}");

    let client = cluster.client().await;
    let err = client
        .upload(
            std::slice::from_ref(&file),
            CopyTo::Engine(1),
            path(&locked),
            &CopyOptions::new(),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        err.status().map(tonic::Status::code),
        Some(Code::PermissionDenied)
    );
    assert!(leftovers(&locked).is_empty());
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
}

#[tokio::test]
#[cfg_attr(
    not(has_root),
    ignore = "needs root (to mount a small tmpfs in a private mount namespace)"
)]
async fn a_full_disk_says_so_and_leaves_nothing() {
    let mut cluster = Cluster::hub();
    let small = cluster.dir().join("small");
    fs::create_dir(&small).expect("mkdir");
    // The engine sees a 1 MiB tmpfs at `small`, in its own mount namespace (gone with it).
    let mount = format!("mount -t tmpfs -o size=1m warren-test '{}'", path(&small));
    let namespace = ["--mount", "--propagation", "private", "sh", "-c"];
    let probe = std::process::Command::new("unshare")
        .args(namespace)
        .arg(&mount)
        .output()
        .expect("run unshare");
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr);
        assert!(
            std::env::var_os("WARREN_REQUIRE_ROOT").is_none(),
            "cannot mount a tmpfs: {why}"
        );
        eprintln!("\n*** SKIPPED: cannot mount a tmpfs here: {why} ***\n");
        return;
    }
    let mut command = std::process::Command::new("unshare");
    command
        .args(namespace)
        .arg(format!("{mount} && exec \"$@\""))
        .arg("sh")
        .arg(binary("warren-engine"))
        .arg("--connection-file")
        .arg(&cluster.connection_file)
        .arg("--spill-dir")
        .arg(cluster.dir().join("spill-small"))
        .env("RUST_LOG", "warn,warren_engine=debug");
    let index = cluster.push_engine("warren-engine (1 MiB disk)", command);
    cluster.wait_for_engines(1).await;
    let big = cluster.dir().join("big");
    fs::write(
        &big,
        (0..3u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .expect("write");

    let (status, _, stderr) = cluster.cli(&["cp", path(&big), &format!("1:{}/", path(&small))]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("no space left"), "{stderr}");
    let err = cluster
        .client()
        .await
        .upload(&[big], CopyTo::Engine(1), path(&small), &CopyOptions::new())
        .await
        .expect_err("refused");
    assert_eq!(
        err.status().map(tonic::Status::code),
        Some(Code::ResourceExhausted)
    );
    // What the engine sees of `small`, through its own namespace.
    let listing = fs::read_dir(format!(
        "/proc/{}/root{}",
        cluster.engines[index].pid(),
        path(&small)
    ));
    if let Ok(listing) = listing {
        let names: Vec<_> = listing.flatten().map(|e| e.file_name()).collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    }
}

#[tokio::test]
async fn an_engine_started_with_no_files_refuses_and_says_so() {
    let mut cluster = Cluster::hub();
    cluster.add_engine(&[]);
    cluster.add_engine(&["--no-files"]);
    cluster.wait_for_engines(2).await;
    let (status, stdout, _) = cluster.cli(&["engines"]);
    assert_eq!(status, 0);
    let files: Vec<_> = stdout
        .lines()
        .skip(1)
        .map(|l| l.contains(" yes "))
        .collect();
    assert_eq!(files.len(), 2, "{stdout}");
    assert!(stdout.contains("FILES"), "{stdout}");
    let engines = cluster.client().await.engines().await.expect("engines");
    let no_files = engines
        .iter()
        .find(|e| !e.files)
        .expect("one without files")
        .id;
    let with_files = engines.iter().find(|e| e.files).expect("one with files").id;

    let file = cluster.dir().join("f");
    fs::write(&file, b"f").expect("write");
    let target = cluster.dir().join("to");
    let (status, _, stderr) =
        cluster.cli(&["cp", path(&file), &format!("{no_files}:{}", path(&target))]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("--no-files"), "{stderr}");
    let err = cluster
        .client()
        .await
        .download(no_files, path(&file), &target, &CopyOptions::new())
        .await
        .expect_err("refused");
    assert_eq!(
        err.status().map(tonic::Status::code),
        Some(Code::FailedPrecondition)
    );
    assert!(!target.exists());

    // To every engine: the one that takes files does, the other's refusal is reported.
    let (status, _, stderr) =
        cluster.cli(&["cp", path(&file), &format!("--all:{}", path(&target))]);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("engine {no_files}: ")) && stderr.contains("--no-files"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("engine {with_files}:")),
        "{stderr}"
    );
    assert_eq!(fs::read(&target).expect("copied by the other engine"), b"f");
}

#[tokio::test]
async fn all_copies_to_every_engine() {
    let mut cluster = Cluster::hub();
    let homes: Vec<_> = (0..3)
        .map(|i| cluster.dir().join(format!("home{i}")))
        .collect();
    for home in &homes {
        fs::create_dir(home).expect("mkdir");
        engine_in(&mut cluster, home, &[]);
    }
    cluster.wait_for_engines(3).await;
    let src = cluster.dir().join("conf");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("app.toml"), b"answer = 42\n").expect("write");

    // A relative path lands in each engine's working directory.
    cp(&cluster, &["-r", path(&src), "--all:settings"]);
    for home in &homes {
        let copied = home.join("settings/app.toml");
        assert_eq!(
            fs::read(&copied).expect("copied"),
            b"answer = 42\n",
            "{}",
            copied.display()
        );
    }
    let results = cluster
        .client()
        .await
        .upload(
            &[src],
            CopyTo::All,
            "settings",
            &CopyOptions::new().recursive(true),
        )
        .await
        .expect("upload to all");
    let ids: Vec<_> = results.iter().map(|r| (r.engine_id, r.code)).collect();
    assert_eq!(ids, vec![(1, 0), (2, 0), (3, 0)]);
    assert!(results.iter().all(|r| {
        r.summary
            .as_ref()
            .is_some_and(|s| s.files == 1 && s.directories == 1)
    }));
}
