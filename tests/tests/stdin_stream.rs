//! A foreground `warren exec` streams its stdin to the task as ssh does: bytes as they come,
//! the end closes the task's stdin, no size limit, the same bytes to every task, `-n` for
//! none, and the history records what each task was given.

use sha2::{Digest, Sha256};
use warren_tests::*;

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that are not all alike, `n` of them.
fn varied(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7919 % 251) as u8).collect()
}

#[tokio::test]
async fn bytes_reach_the_task_as_they_are_typed_and_the_end_closes_its_stdin() {
    let cluster = Cluster::with_engines(1).await;
    let mut command = cluster.cli_command();
    // No `--`: options end at the first word that is not one.
    command.args([
        "exec",
        "sh",
        "-c",
        "while read line; do echo \"got $line\"; done; echo eof",
    ]);
    let mut warren = Piped::spawn(command);
    // Each line comes back before the next is written: nothing waits for the end of stdin.
    for word in ["one", "two", "three"] {
        warren.write(format!("{word}\n").as_bytes());
        assert_eq!(
            warren.line().as_deref(),
            Some(format!("got {word}").as_str())
        );
    }
    warren.close_stdin();
    assert_eq!(warren.line().as_deref(), Some("eof"));
    assert!(warren.wait().success(), "{}", warren.stderr());

    // The history says what the task was given.
    let id = newest_task(&cluster).await.id.to_string();
    let (status, given, stderr) = cluster.cli(&["attach", &id, "--input"]);
    assert_eq!(
        (status, given.as_str()),
        (0, "one\ntwo\nthree\n"),
        "{stderr}"
    );
    let (_, output, _) = cluster.cli(&["attach", &id]);
    assert_eq!(output, "got one\ngot two\ngot three\neof\n");
}

#[tokio::test]
async fn every_task_gets_the_same_bytes_with_no_limit_on_their_size() {
    let cluster = Cluster::with_engines(2).await;
    // Past the 4 MiB a request could carry, and several windows' worth.
    let input = varied(24 << 20);
    let mut command = cluster.cli_command();
    command.args(["exec", "--all", "--", "sha256sum"]);
    let mut warren = Piped::spawn(command);
    let writer = {
        let mut stdin = warren.take_stdin();
        let input = input.clone();
        std::thread::spawn(move || {
            std::io::Write::write_all(&mut stdin, &input).expect("write stdin");
        })
    };
    let expected = format!("{}  -", digest(&input));
    let mut lines = [warren.line(), warren.line()];
    lines.sort();
    assert_eq!(
        lines,
        [
            Some(format!("[engine 1] {expected}")),
            Some(format!("[engine 2] {expected}"))
        ],
        "{}",
        warren.stderr()
    );
    writer.join().expect("the writer");
    assert!(warren.wait().success(), "{}", warren.stderr());
}

#[tokio::test]
async fn no_stdin_gives_an_empty_one_and_a_file_streams_whole() {
    let cluster = Cluster::with_engines(1).await;
    // Our stdin stays open; -n does not wait for it.
    let mut command = cluster.cli_command();
    command.args(["exec", "-n", "--", "wc", "-c"]);
    let mut warren = Piped::spawn(command);
    assert_eq!(warren.line().as_deref(), Some("0"));
    assert!(warren.wait().success());

    let file = cluster.dir().join("input");
    let input = varied(6 << 20);
    std::fs::write(&file, &input).expect("write the input");
    let path = file.to_str().expect("utf-8 path");
    let (status, stdout, stderr) = cluster.cli(&["exec", "--stdin", path, "--", "sha256sum"]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("{}  -", digest(&input)));
    // Detached, the file is read whole and bounded, as before.
    let (status, _, stderr) = cluster.cli(&["exec", "--detach", "--stdin", path, "--", "true"]);
    assert_eq!(status, 64, "{stderr}");
    assert!(stderr.contains("larger than"), "{stderr}");
}

#[tokio::test]
async fn recorded_stdin_counts_against_the_output_cap() {
    let cluster = Cluster::hub_with_engines(&["--max-output-kept", "1KiB"], 1).await;
    let mut command = cluster.cli_command();
    command.args(["exec", "--", "sh", "-c", "cat > /dev/null"]);
    let mut warren = Piped::spawn(command);
    warren.write(&varied(64 << 10));
    warren.close_stdin();
    assert!(warren.wait().success(), "{}", warren.stderr());
    let id = newest_task(&cluster).await.id;
    let info = cluster.client().await.task(id).await.expect("task");
    assert_eq!(info.output_bytes, 64 << 10, "{info:?}");
    assert!(info.output_bytes_kept <= 1024, "{info:?}");
    assert!(info.output_bytes_dropped >= (63 << 10), "{info:?}");
}

#[tokio::test]
async fn the_interact_stream_leaves_out_the_stdin_it_was_sent_and_the_history_keeps_it() {
    use futures_util::TryStreamExt;
    use warren::{EventKind, Job, OutputStream};

    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let (stdin, mut events) = client
        .interact(Job::argv(["sh", "-c", "cat > /dev/null; echo done"]))
        .await
        .expect("interact");
    let input = varied(3 << 20);
    stdin.send(input.clone()).await.expect("send");
    stdin.end().await.expect("end");
    let (mut id, mut stdout, mut echoed) = (0, Vec::new(), 0);
    while let Some(event) = tokio::time::timeout(PATIENCE, events.try_next())
        .await
        .expect("the task ends in time")
        .expect("the stream")
    {
        id = event.task_id;
        if let EventKind::Output { stream, data } = event.kind {
            match stream {
                OutputStream::Stdin => echoed += data.len(),
                _ => stdout.extend_from_slice(&data),
            }
        }
    }
    assert_eq!((echoed, stdout.as_slice()), (0, &b"done\n"[..]));

    let mut replay = client.follow(id, 0).await.expect("follow");
    let mut given = Vec::new();
    while let Some(event) = replay.try_next().await.expect("replay") {
        if let EventKind::Output {
            stream: OutputStream::Stdin,
            data,
        } = event.kind
        {
            given.extend_from_slice(&data);
        }
    }
    assert_eq!(
        digest(&given),
        digest(&input),
        "the history keeps what it was given"
    );
}
