//! StreamOutput: replay from any sequence number, then follow live; several followers at once.

use warren::EventKind;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

#[tokio::test]
async fn two_followers_from_different_seqs_see_the_same_task() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let script = format!(
        "i=1; while [ $i -le 20 ]; do echo a$i; i=$((i+1)); done; {}; \
         i=1; while [ $i -le 20 ]; do echo b$i; i=$((i+1)); done",
        wait_for_gate(&gate)
    );
    let id = client.submit(Job::script(script)).await.expect("submit")[0];
    // Wait until the first half is out, so the first follower starts with a replay and the
    // second starts at the first event after it.
    let info = eventually(PATIENCE, || async {
        let info = client.task(id).await.map_err(|_| ())?;
        if info.output_bytes == 71 {
            Ok(info)
        } else {
            Err(())
        }
    })
    .await
    .expect("the first half of the output");
    let from = info.next_seq;
    let from_start = client.follow(id, 0).await.expect("follow from 0");
    let from_later = client.follow(id, from).await.expect("follow from later");
    std::fs::write(&gate, b"").expect("gate");
    let (all, later) = tokio::join!(collect(from_start), collect(from_later));

    assert_contiguous(&all, id, 0);
    assert_contiguous(&later, id, from);
    let a: String = (1..=20).map(|i| format!("a{i}\n")).collect();
    let b: String = (1..=20).map(|i| format!("b{i}\n")).collect();
    assert_eq!(stdout_text(&all, id), format!("{a}{b}"));
    assert_eq!(stdout_text(&later, id), b);
    assert_eq!(
        &all[from as usize..],
        &later[..],
        "both followers see the same events from {from}"
    );
    assert_eq!(only_result(&all).state, TaskState::Succeeded);

    // After the end, a replay from 0 still has everything, and asking past the end is an error.
    let replay = collect(client.follow(id, 0).await.expect("replay")).await;
    assert_eq!(replay, all);
    let past = client
        .follow(id, all.len() as u64 + 10)
        .await
        .expect_err("past the end");
    assert_code(&past, tonic::Code::OutOfRange);
}

#[tokio::test]
async fn a_follower_that_goes_away_does_not_hurt_the_task() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let id = client
        .submit(Job::script(
            "i=1; while [ $i -le 2000 ]; do echo line$i; i=$((i+1)); done",
        ))
        .await
        .expect("submit")[0];
    let mut events = client.follow(id, 0).await.expect("follow");
    let _ = next_event(&mut events, PATIENCE).await;
    drop(events);
    let replay = collect(client.follow(id, 0).await.expect("follow")).await;
    assert_eq!(only_result(&replay).state, TaskState::Succeeded);
    let text = stdout_text(&replay, id);
    assert_eq!(text.lines().count(), 2000);
    assert!(
        replay
            .iter()
            .any(|e| matches!(e.kind, EventKind::State { .. }))
    );
}

#[tokio::test]
async fn output_past_the_cap_still_streams_and_the_record_says_how_much_was_not_kept() {
    let cluster = Cluster::hub_with_engines(&["--max-output-kept", "256KiB"], 1).await;
    let client = cluster.client().await;
    let live = collect(
        client
            // Sixteen spaced 64 KiB writes: the engine reads each on its own, so the first
            // chunks fit under the cap (kept output is a prefix of whole chunks).
            .run(Job::script(
                "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do \
                 head -c 65536 /dev/zero; sleep 0.05; done",
            ))
            .await
            .expect("run"),
    )
    .await;
    let id = live[0].task_id;
    // Live, every byte arrives: the follow window (8 MiB) covers the whole output.
    let live_kinds = kinds_of(&live);
    assert_eq!(
        output(&live, id, warren::OutputStream::Stdout).len(),
        1 << 20,
        "{live_kinds:?}"
    );
    let info = client.task(id).await.expect("task");
    assert_eq!(info.output_bytes, 1 << 20);
    assert!(
        info.output_bytes_dropped > 0 && info.output_bytes_dropped < 1 << 20,
        "dropped {} of 1 MiB: {live_kinds:?}",
        info.output_bytes_dropped
    );
    // A replay later gets what was kept and one gap that accounts for every other byte.
    let replay = collect(client.follow(id, 0).await.expect("replay")).await;
    let kept = output(&replay, id, warren::OutputStream::Stdout).len() as u64;
    let gap: u64 = replay
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Gap { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum();
    let kinds = kinds_of(&replay);
    assert_eq!(kept + gap, 1 << 20, "{kinds:?}");
    assert!(kept <= 256 << 10, "kept {kept} bytes, over the 256 KiB cap");
    assert_eq!(gap, info.output_bytes_dropped);
    assert_eq!(only_result(&replay).state, TaskState::Succeeded);
}

/// Each event's seq and a short description of it (output by size), for assertion messages.
fn kinds_of(events: &[warren::Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EventKind::Output { data, .. } => format!("out {}", data.len()),
                other => format!("{other:?}"),
            };
            (e.seq, kind)
        })
        .collect()
}
