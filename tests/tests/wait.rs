//! `warren wait` and `warren result` with several ids, and with `--label` selections.

use warren::Job;
use warren_tests::*;

#[tokio::test]
async fn wait_by_label_waits_for_every_task_and_exits_with_the_worst_status() {
    let cluster = Cluster::with_engines(2).await;
    let client = cluster.client().await;
    let gate = cluster.dir().join("gate");
    let held = |exit: u8| {
        Job::script(format!("{}; exit {exit}", wait_for_gate(&gate))).label("batch", "7")
    };
    let mut ids = Vec::new();
    for exit in [0, 3, 0] {
        ids.push(client.submit(held(exit)).await.expect("submit")[0]);
    }
    client
        .submit(Job::argv(["false"]).label("batch", "8"))
        .await
        .expect("another batch");

    let mut command = cluster.cli_command();
    command.args(["wait", "--label", "batch=7"]);
    let mut waiting = Proc::spawn("warren wait", command, cluster.dir().join("wait.log"));
    // It has found the tasks, none ended (they are held at the gate), before the gate opens.
    waiting
        .wait_for_output("waiting for 3 of 3 tasks to end")
        .await;
    std::fs::write(&gate, b"").expect("open the gate");
    let status = waiting.wait_for_exit(PATIENCE).await.expect("wait exits");
    assert_eq!(status.code(), Some(3), "{}", waiting.output());
    let said = waiting.output();
    assert!(
        said.contains(&format!("task {} failed: exited with status 3", ids[1])),
        "{said}"
    );
    assert!(
        said.contains("3 tasks ended: 2 succeeded, 1 did not"),
        "{said}"
    );

    let (status, _, stderr) = cluster.cli(&["wait", &ids[0].to_string(), &ids[2].to_string()]);
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = cluster.cli(&["wait", "--label", "batch=none"]);
    assert_eq!(status, 255);
    assert!(
        stderr.contains("no task has the labels batch=none"),
        "{stderr}"
    );
    let (status, _, stderr) = cluster.cli(&["wait", &ids[0].to_string(), "4242"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("there is no task 4242"), "{stderr}");
}

#[tokio::test]
async fn result_shows_several_records_and_exits_with_the_worst_status() {
    let cluster = Cluster::with_engines(1).await;
    let client = cluster.client().await;
    let mut ids = Vec::new();
    for script in ["exit 0", "exit 4", "exit 2"] {
        let id = client
            .submit(Job::script(script).label("set", "r"))
            .await
            .expect("submit")[0];
        client.wait(id).await.expect("ended");
        ids.push(id.to_string());
    }
    let (status, stdout, _) = cluster.cli(&["result", &ids[0], &ids[1]]);
    assert_eq!(status, 4);
    assert_eq!(stdout.matches("\ntask ").count() + 1, 2, "{stdout}");
    assert!(
        stdout.contains(&format!("task       {}", ids[1])),
        "{stdout}"
    );

    let (status, stdout, _) = cluster.cli(&["result", "--label", "set=r"]);
    assert_eq!(status, 4);
    for id in &ids {
        assert!(stdout.contains(&format!("task       {id}\n")), "{stdout}");
    }
    let (status, _, stderr) = cluster.cli(&["result", &ids[0], "4242"]);
    assert_eq!(status, 255);
    assert!(stderr.contains("does not exist"), "{stderr}");
    let (status, _, stderr) = cluster.cli(&["result", &ids[0], "--label", "set=r"]);
    assert_eq!(status, 64, "ids or labels, not both: {stderr}");
}
