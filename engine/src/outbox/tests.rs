//! The outbox's books, with the file work done at once, as the blocking threads would.

use super::*;

/// An outbox of `limit` bytes in memory, spilling into a new temp dir.
fn outbox(limit: usize) -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::new(limit, dir.path().join("spill"));
    (dir, outbox)
}

fn seqs(outbox: &Outbox, after: u64) -> Vec<u64> {
    outbox.after(after).map(|c| c.seq).collect()
}

/// Does the reads an outbox asks for, as the engine's blocking threads would.
fn read_all(outbox: &mut Outbox, mut read: Option<SpillRead>) {
    while let Some(job) = read {
        read = outbox.refilled(job.run());
    }
}

/// Pushes, doing the write (and any read) at once; whether it was taken.
fn push(outbox: &mut Outbox, stream: i32, data: Bytes, spill: bool) -> bool {
    match outbox.push(stream, data, spill) {
        Pushed::Taken => true,
        Pushed::Full => false,
        Pushed::Spill(write) => {
            let outcome = write.run();
            let read = outbox.written(&outcome);
            read_all(outbox, read);
            outcome.is_ok()
        }
    }
}

/// Pushes `n` two-byte chunks while the hub is away.
fn away(outbox: &mut Outbox, n: usize) {
    for _ in 0..n {
        assert!(push(outbox, 1, Bytes::from_static(b"ab"), true));
    }
}

fn ack(outbox: &mut Outbox, seq: u64) {
    let read = outbox.ack(seq);
    read_all(outbox, read);
}

#[test]
fn when_connected_a_full_memory_pushes_back() {
    let (_dir, mut outbox) = outbox(10);
    assert!(push(
        &mut outbox,
        1,
        Bytes::from_static(b"0123456789"),
        false
    ));
    assert!(!push(&mut outbox, 1, Bytes::from_static(b"x"), false));
    ack(&mut outbox, 1);
    assert!(push(&mut outbox, 1, Bytes::from_static(b"x"), false));
    assert_eq!(seqs(&outbox, 0), vec![2]);
}

#[test]
fn while_away_output_spills_and_comes_back_in_order() {
    let (dir, mut outbox) = outbox(4);
    for i in 0..10u8 {
        assert!(push(
            &mut outbox,
            1 + i32::from(i % 2),
            Bytes::from(vec![i; 3]),
            true
        ));
    }
    assert_eq!(outbox.produced(), 10);
    assert!(outbox.spilled_bytes() > 0);
    let mode = std::fs::metadata(dir.path().join("spill"))
        .expect("spill")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let mut seen = Vec::new();
    let mut acked = 0;
    while acked < 10 {
        let next: Vec<Chunk> = outbox.after(acked).cloned().collect();
        assert!(!next.is_empty(), "stalled after {acked}");
        for chunk in next {
            assert_eq!(chunk.data, Bytes::from(vec![(chunk.seq - 1) as u8; 3]));
            seen.push(chunk.seq);
            acked = chunk.seq;
        }
        ack(&mut outbox, acked);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert!(
        !dir.path().join("spill").exists(),
        "the spill file goes once it is empty"
    );
}

#[test]
fn an_ack_past_memory_skips_spilled_chunks_too() {
    let (_dir, mut outbox) = outbox(1);
    away(&mut outbox, 5);
    ack(&mut outbox, 4);
    assert_eq!(seqs(&outbox, 0), vec![5]);
}

#[test]
fn one_file_job_at_a_time_and_a_failed_write_takes_nothing() {
    let (_dir, mut outbox) = outbox(1);
    assert!(push(&mut outbox, 1, Bytes::from_static(b"a"), true));
    let Pushed::Spill(first) = outbox.push(1, Bytes::from_static(b"b"), true) else {
        panic!("memory is full: the next chunk goes to the file");
    };
    assert!(
        matches!(outbox.push(2, Bytes::from_static(b"c"), true), Pushed::Full),
        "a second write waits for the first"
    );
    assert!(
        outbox.ack(1).is_none(),
        "no read while a write is under way"
    );
    let failed = Err(io::Error::other("disk full"));
    assert!(outbox.written(&failed).is_none());
    assert_eq!(outbox.produced(), 1, "the chunk that failed is not counted");
    assert!(!outbox.has_spill_file());
    // Memory has room again after the ack: the retry fits there.
    drop(first);
    assert!(push(&mut outbox, 1, Bytes::from_static(b"b"), true));
    assert_eq!(seqs(&outbox, 1), vec![2]);
}

#[test]
fn a_read_fills_memory_up_to_its_bound_and_no_further() {
    let (_dir, mut outbox) = outbox(4);
    away(&mut outbox, 6);
    assert_eq!(seqs(&outbox, 0), vec![1, 2]);
    ack(&mut outbox, 2);
    assert_eq!(seqs(&outbox, 0), vec![3, 4], "two chunks fill 4 bytes");
    assert_eq!(outbox.memory_bytes(), 4);
    assert_eq!(outbox.spilled_bytes(), 4);
}
