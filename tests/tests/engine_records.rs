//! What engines send is bounded, and so is what the hub remembers of engines: a 30 MB hostname
//! is refused without growing the hub, and 2,000 engines that come and go leave at most
//! `--max-engine-records` rows, while no id is ever handed out twice.

use std::time::Instant;
use tonic::Code;
use warren::proto::{Hello, HubMessage, hub_message};
use warren_tests::*;

/// The hub's peak RSS after refusing a Hello with a 30 MB hostname (131 MiB before the fix,
/// which kept it); the hub reads at most 4 MiB of any engine message.
const HUB_PEAK_BOUND: u64 = 64 << 20;

fn hello(uuid: &str) -> Hello {
    Hello {
        uuid: uuid.into(),
        hostname: "host".into(),
        version: "test".into(),
        slots: 1,
        ..Hello::default()
    }
}

async fn welcomed_id(cluster: &Cluster, uuid: &str) -> u32 {
    let (tx, mut inbound) = cluster.register_raw(hello(uuid)).await.expect("register");
    let welcome = inbound.message().await.expect("stream").expect("a message");
    drop(tx);
    match welcome {
        HubMessage {
            kind: Some(hub_message::Kind::Welcome(welcome)),
        } => welcome.engine_id,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn engine_rows(cluster: &Cluster) -> (i64, i64) {
    let db = rusqlite::Connection::open(cluster.dir().join("hub.db")).expect("open the db");
    db.query_row(
        "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM engines",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

#[tokio::test]
async fn a_huge_hostname_or_version_is_refused_and_costs_nothing() {
    let cluster = Cluster::hub();
    let hub_pid = cluster.hub.as_ref().expect("hub").pid();
    let huge = Hello {
        hostname: "h".repeat(30_000_000),
        ..hello("huge-hostname")
    };
    let refused = match cluster.register_raw(huge).await {
        Err(status) => status,
        Ok((_tx, mut inbound)) => inbound.message().await.expect_err("refused"),
    };
    assert!(
        matches!(
            refused.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{refused:?}"
    );
    let long_version = Hello {
        version: "v".repeat(1000),
        ..hello("long-version")
    };
    let refused = match cluster.register_raw(long_version).await {
        Err(status) => status,
        Ok((_tx, mut inbound)) => inbound.message().await.expect_err("refused"),
    };
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("version"),
        "{}",
        refused.message()
    );
    let client = cluster.client().await;
    assert!(client.engines().await.expect("engines").is_empty());
    let peak = peak_rss(hub_pid);
    eprintln!("hub peak RSS after a 30 MB hostname: {}", mib(peak));
    assert!(peak < HUB_PEAK_BOUND, "hub peak RSS {}", mib(peak));
}

#[tokio::test]
async fn engines_that_come_and_go_leave_bounded_records_and_ids_only_grow() {
    let mut cluster = Cluster::hub_with(&["--max-engine-records", "100"]);
    let started = Instant::now();
    for i in 1..=2000u32 {
        assert_eq!(welcomed_id(&cluster, &format!("uuid-{i}")).await, i);
    }
    eprintln!("2,000 registrations in {:?}", started.elapsed());
    // Written behind the hub's back: wait until the last one is in.
    let settled = eventually(PATIENCE, || async {
        let (rows, max) = engine_rows(&cluster);
        if max == 2000 {
            Ok(rows)
        } else {
            Err((rows, max))
        }
    })
    .await
    .expect("the last engine's row");
    // 100 remembered, beside those still connected when the last one came (a closed stream is
    // noticed a moment later).
    assert!(
        settled <= 110,
        "{settled} engine rows for --max-engine-records 100"
    );

    // A forgotten engine comes back under a new id, never an old one, even after a restart.
    assert_eq!(welcomed_id(&cluster, "uuid-1").await, 2001);
    cluster.hub = None;
    cluster.start_hub(&["--max-engine-records", "100"]);
    assert_eq!(welcomed_id(&cluster, "uuid-2").await, 2002);
    assert_eq!(welcomed_id(&cluster, "uuid-2000").await, 2000, "remembered");
}
