//! Stopping: Control.Shutdown and SIGTERM stop the hub gracefully, tell the engines, let
//! followers see the end, and remove the socket and the connection file.

use futures_util::TryStreamExt;
use rustix::process::Signal;
use std::time::Duration;
use warren::Job;
use warren::proto::TaskState;
use warren_tests::*;

#[tokio::test]
async fn control_shutdown_stops_hub_and_engines_and_followers_see_the_end() {
    let mut cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let mut events = client
        .run(Job::script("echo up; exec sleep 60").engines([1]))
        .await
        .expect("run");
    first_output(&mut events).await;
    client.shutdown(true).await.expect("shutdown");
    let rest = collect(events).await;
    assert_ended(&rest, TaskState::Aborted, "engine is exiting");

    let hub = cluster.hub.as_mut().expect("hub");
    hub.wait_for_success("when asked to shut down").await;
    assert!(!cluster.socket.exists(), "the socket is removed");
    assert!(
        !cluster.connection_file.exists(),
        "the connection file is removed"
    );
    for engine in &mut cluster.engines {
        engine.wait_for_success("when the hub asks").await;
    }
}

#[tokio::test]
async fn sigterm_stops_the_hub_and_engines_wait_for_the_next_one() {
    let mut cluster = Cluster::with_engines(1).await;
    let hub = cluster.hub.as_mut().expect("hub");
    hub.signal(Signal::TERM);
    hub.wait_for_success("on SIGTERM").await;
    assert!(!cluster.socket.exists() && !cluster.connection_file.exists());
    assert!(
        cluster.engines[0].try_wait().is_none(),
        "the engine keeps waiting for a hub"
    );

    cluster.start_hub(&[]);
    cluster.wait_for_engines(1).await;
    let events = collect(
        cluster
            .client()
            .await
            .run(Job::argv(["echo", "back"]))
            .await
            .expect("run"),
    )
    .await;
    assert_eq!(stdout_text(&events, events[0].task_id), "back\n");

    cluster.engines[0].signal(Signal::TERM);
    cluster.engines[0].wait_for_success("on SIGTERM").await;
}

#[tokio::test]
async fn engines_can_be_stopped_one_by_one() {
    let mut cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let engines = client.engines().await.expect("engines");
    let pid_of_2 = engines.iter().find(|e| e.id == 2).expect("engine 2").pid;
    let (stopping, staying): (Vec<_>, Vec<_>) = cluster
        .engines
        .iter_mut()
        .partition(|p| p.pid() == pid_of_2);
    assert_eq!(
        client.shutdown_engines(&[2]).await.expect("stop engine 2"),
        vec![2]
    );
    stopping
        .into_iter()
        .next()
        .expect("engine 2's process")
        .wait_for_success("when asked to stop")
        .await;
    assert!(
        staying.into_iter().all(|p| p.try_wait().is_none()),
        "only engine 2 stops"
    );
    cluster.wait_for_engines(1).await;
    let unknown = client
        .shutdown_engines(&[9])
        .await
        .expect_err("unknown engine");
    assert_code(&unknown, tonic::Code::NotFound);
}

#[tokio::test]
async fn a_follower_is_told_when_the_hub_goes_away_and_where_to_pick_up() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let mut events = client
        .run(Job::script(format!("echo up; {}", wait_for_gate(&gate))))
        .await
        .expect("run");
    first_output(&mut events).await;
    cluster.hub.as_ref().expect("hub").signal(Signal::TERM);
    let err = loop {
        match events.try_next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended as if the task had"),
            Err(err) => break err,
        }
    };
    assert_status(&err, tonic::Code::Unavailable, "warren attach 1 --from");
    std::fs::write(&gate, b"").expect("gate");
}

#[tokio::test]
async fn a_follower_of_a_hub_that_froze_gets_an_error_not_a_hang() {
    let cluster = Cluster::hub_with_engines(&["--heartbeat-ms", "100"], 1).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let mut events = client
        .run(Job::script(wait_for_gate(&gate)))
        .await
        .expect("run");
    let hub = cluster.hub.as_ref().expect("hub");
    hub.signal(Signal::STOP);
    // The deadline only guards against a hang: the SDK's own silence limit ends the stream.
    let err = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.try_next().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended"),
                Err(err) => break err,
            }
        }
    })
    .await;
    hub.signal(Signal::CONT);
    std::fs::write(&gate, b"").expect("gate");
    let err = err.expect("a follower of a frozen hub hangs");
    // The limit comes from the hub's 100 ms heartbeat (a few beats and some slack), not from
    // the SDK's 30 s default; how long it takes in practice is the bench's to measure.
    match err {
        warren::Error::Silent(limit) => assert!(limit < Duration::from_secs(10), "{limit:?}"),
        other => panic!("expected silence, got {other}"),
    }
}
