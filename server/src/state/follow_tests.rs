//! The follower's unit tests: a stopping hub, gaps read from the history, and the lead.

use futures_util::StreamExt;
use std::time::Duration;
use warren_proto::v1::task_event::Kind;
use warren_proto::v1::{TaskEvent, hub_message};

use crate::error::HubError;
use crate::model::Submitter;
use crate::state::Settings;
use crate::state::tasklog::LogLimits;
use crate::state::testing::{TestEngine, hub, submit};
use crate::state::{EventStream, Hub};

#[tokio::test]
async fn a_stopping_hub_still_hands_out_a_shown_end_and_then_says_where_to_pick_up() {
    let (hub, _clock) = hub(Settings::small("test"));
    let engine = TestEngine::register(&hub, "e", 2, &[]);
    let (ended, running) = (submit(&hub, 0), submit(&hub, 0));
    engine.start(&hub, ended, 1);
    engine.start(&hub, running, 1);
    let client = Submitter::default();
    let first = hub.follow(ended, 0, client).await.expect("follow");
    let second = hub.follow(running, 0, client).await.expect("follow");
    engine.finish(&hub, ended);
    hub.wait_until_ended(ended).await;
    hub.stop();

    let read = |events: crate::state::EventStream| async move {
        let all: Vec<_> = tokio::time::timeout(Duration::from_secs(60), events.collect())
            .await
            .expect("the stream ends");
        all
    };
    let first = read(first).await;
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    let last = first.last().and_then(|e| e.as_ref().ok()?.kind.clone());
    assert!(matches!(last, Some(Kind::Result(_))), "{first:?}");

    let second = read(second).await;
    let (shown, end) = second.split_at(second.len() - 1);
    assert_eq!(shown.len(), 2, "queued and running: {second:?}");
    assert!(
        matches!(end, [Err(HubError::StoppedFollowing { cursor: 2, .. })]),
        "{end:?}"
    );
}

const CHUNK: usize = 1000;

/// The next event that is not a heartbeat.
async fn next(events: &mut EventStream) -> TaskEvent {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
            .expect("an event, not an error");
        if !matches!(event.kind, Some(Kind::Heartbeat(_))) {
            return event;
        }
    }
}

/// Waits (boundedly) until the history records output through `seq`, kept or as a gap, and
/// the hub has had the commit's report.
async fn committed_through(hub: &Hub, task_id: u64, seq: u64) {
    for _ in 0..1000 {
        let entries = hub
            .store
            .entries(task_id, 0, None, 1 << 30)
            .await
            .expect("read");
        // The hub's window moves once it has the commit's report, which comes apart from
        // the read: wait for both.
        let reported = hub.view(|state| {
            let task = state.tasks.get(&task_id);
            task.is_some_and(|task| task.log.committed_end() > seq)
        });
        if entries.last().is_some_and(|(_, next)| *next > seq) && reported {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the history never got to seq {seq}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_read_from_the_history_stops_where_the_window_starts_so_the_lead_keeps_every_byte() {
    let mut settings = Settings::small("test");
    // One chunk kept; the window holds six chunks beyond what its lead has not read.
    settings.log_limits = LogLimits {
        keep: CHUNK as u64,
        window: 6 * (CHUNK as u64 + 128),
    };
    let (hub, _clock) = hub(settings);
    let engine = TestEngine::register(&hub, "e", 1, &[]);
    let id = submit(&hub, 0);
    engine.start(&hub, id, 1);
    let client = Submitter::default();
    let mut fast = hub.follow(id, 0, client).await.expect("follow");
    let mut slow = hub.follow(id, 0, client).await.expect("follow");
    let first = next(&mut slow).await;
    let mut chunk_seq = 0;
    let mut send = |n: u64| {
        for _ in 0..n {
            chunk_seq += 1;
            engine.output(&hub, id, chunk_seq, CHUNK);
        }
    };
    // What the lead reads: output, and never a gap.
    let lead_read = |event: &TaskEvent| match &event.kind {
        Some(Kind::Output(chunk)) => chunk.data.len(),
        other => {
            assert!(!matches!(other, Some(Kind::Gap(_))), "the lead got a gap");
            0
        }
    };

    // The lead reads eight chunks as they come; the window keeps the last six.
    send(8);
    let (mut lead_bytes, mut last) = (0, 0);
    while lead_bytes < 8 * CHUNK {
        let event = next(&mut fast).await;
        lead_bytes += lead_read(&event);
        last = event.seq;
    }
    committed_through(&hub, id, last).await;
    // Seven more that the lead has not read yet: all of them in the history's one gap.
    send(7);
    committed_through(&hub, id, last + 7).await;
    let window_start = hub.view(|state| state.tasks[&id].log.window_start());
    assert!(
        window_start <= last + 1,
        "the window keeps what the lead has not read"
    );

    // The slow follower is behind the window and reads the history: its gap ends where
    // the window starts, and it reads on from the window, not past the lead.
    let (mut slow_bytes, mut cursor) = (0, first.seq + 1);
    let mut read_slow = async |cursor: &mut u64| {
        let event = next(&mut slow).await;
        assert_eq!(event.seq, *cursor, "no event is skipped or repeated");
        match event.kind {
            Some(Kind::Output(chunk)) => {
                *cursor += 1;
                chunk.data.len() as u64
            }
            Some(Kind::Gap(gap)) => {
                assert!(gap.last_seq < window_start, "{gap:?} runs into the window");
                *cursor = gap.last_seq + 1;
                gap.bytes
            }
            _ => {
                *cursor += 1;
                0
            }
        }
    };
    while cursor <= window_start {
        slow_bytes += read_slow(&mut cursor).await;
    }

    // The slow follower took a batch from the window ahead of the lead, but the lead
    // stays the lead: it reads the seven in full.
    while lead_bytes < 15 * CHUNK {
        lead_bytes += lead_read(&next(&mut fast).await);
    }
    while cursor <= last + 7 {
        slow_bytes += read_slow(&mut cursor).await;
    }
    assert_eq!(
        slow_bytes,
        15 * CHUNK as u64,
        "every byte is shown or counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_catches_up_takes_the_lead_from_one_that_reads_nothing() {
    let mut settings = Settings::small("test");
    settings.log_limits = LogLimits {
        keep: 1 << 20,
        window: 6 * (CHUNK as u64 + 128),
    };
    let (hub, _clock) = hub(settings);
    let mut engine = TestEngine::register(&hub, "e", 1, &[]);
    let id = submit(&hub, 0);
    engine.start(&hub, id, 1);
    let client = Submitter::default();
    // The first follower leads, and reads nothing.
    let _stuck = hub.follow(id, 0, client).await.expect("follow");
    let mut reader = hub.follow(id, 0, client).await.expect("follow");
    for chunk_seq in 1..=8 {
        engine.output(&hub, id, chunk_seq, CHUNK);
    }
    let mut bytes = 0;
    while bytes < 8 * CHUNK {
        if let Some(Kind::Output(chunk)) = next(&mut reader).await.kind {
            bytes += chunk.data.len();
        }
    }
    // It asks for more, and waits.
    let _waiting = tokio::spawn(async move { reader.next().await });
    // Eight chunks are over the window: the engine hears of them only once the reader,
    // caught up and waiting, has taken the lead from the follower that reads nothing.
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match engine.inbox.recv().await.map(|m| m.kind) {
                Some(Some(hub_message::Kind::Ack(ack))) if ack.chunk_seq == 8 => break,
                Some(_) => {}
                None => panic!("the engine's inbox closed"),
            }
        }
    })
    .await;
    assert!(acked.is_ok(), "the output is never acknowledged");
}
