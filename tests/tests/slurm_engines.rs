//! `warren engines slurm` against a real private Slurm, with the engines reaching the hub
//! through the private sshd (this machine is the submit host and the only node): engines
//! registered with their Slurm labels and running work; a hub restart they ride through their
//! forwards; `warren engines stop`, `--cancel`, scancel and a time limit ending them, with
//! their tasks lost or retried at once and their forwards and files gone; the errors a person
//! can act on; 64 engines from one command. Each test is marked ignored, with the reason,
//! where Slurm or OpenSSH is not installed (see tests/build.rs).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use warren::Job;
use warren::proto::TaskState;
use warren_proto::connection::ConnectionInfo;
use warren_tests::slurm::{KILL_WAIT, TIME_LIMIT_CHECK};
use warren_tests::slurm_engines::{
    LIMIT, REGISTER_LIMIT, SlurmCluster, Submitted, alive, processes_mentioning, read, wait_until,
};
use warren_tests::*;

/// The label values of one key across engines.
fn labels(engines: &[warren::proto::EngineInfo], key: &str) -> BTreeSet<String> {
    engines
        .iter()
        .filter_map(|e| e.labels.get(key).cloned())
        .collect()
}

/// Submits and checks that the command succeeded; the job id.
fn submit_ok(s: &SlurmCluster, args: &[&str]) -> (u32, Submitted) {
    let out = s.submit(args);
    let job = out.job();
    assert!(
        out.status == 0 && job.is_some(),
        "{out:?}\n{}",
        job.map(|j| s.job_log(j)).unwrap_or_default()
    );
    (job.unwrap_or_default(), out)
}

/// Waits until a task reaches `state`; its reason.
async fn wait_for_state(s: &SlurmCluster, task: u64, state: TaskState) -> String {
    reason_in_state(&s.client().await, task, state, LIMIT).await
}

/// Waits until job `job` has no engine registered, its nodes' directories are gone, and so
/// are the engine processes `pids` and every process that mentions a node's directory (the
/// forwards' ssh).
async fn wait_for_clean_end(s: &SlurmCluster, job: u32, pids: &[u32], limit: Duration) {
    let dirs = s.node_dirs(job);
    let deadline = Instant::now() + limit;
    while !s.engines_of(job).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "job {job}'s engines are still registered\n{}",
            s.job_log(job)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = deadline.saturating_duration_since(Instant::now()) + KILL_WAIT;
    wait_until(rest, "the nodes' directories are removed", || {
        s.node_dirs(job).is_empty()
    })
    .await;
    wait_until(rest, "the engine processes exit", || {
        !pids.iter().any(|p| alive(*p))
    })
    .await;
    for dir in dirs {
        let dir = dir.display().to_string();
        wait_until(rest, "the forwards' ssh exit", || {
            processes_mentioning(&dir).is_empty()
        })
        .await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
async fn four_engines_carry_their_slurm_labels_run_work_ride_a_hub_restart_and_stop() {
    let Some(mut s) = SlurmCluster::start(4, &[]) else {
        return;
    };
    let (job, out) = submit_ok(&s, &["-n", "4", "--slots", "2", "--label", "pool=a"]);
    assert_eq!(
        out.stdout.matches(" registered: task ").count(),
        4,
        "{}",
        out.stdout
    );
    let engines = s.wait_for_engines(job, 4, LIMIT).await;
    assert_eq!(
        labels(&engines, "slurm_task"),
        ["0", "1", "2", "3"].map(String::from).into()
    );
    assert_eq!(
        labels(&engines, "slurm_node"),
        [s.slurm.node().to_owned()].into()
    );
    assert_eq!(labels(&engines, "pool"), ["a".to_owned()].into());
    assert!(engines.iter().all(|e| e.slots == 2), "{engines:?}");
    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();

    // The key is in no stored script, command line or environment of the job; the node's
    // copy is a 0600 file beside a 0600 socket in a 0700 directory.
    let key = ConnectionInfo::load(&s.cluster.connection_file)
        .expect("connection file")
        .key;
    assert!(!s.stored_script(job).contains(&key));
    let processes = s.job_processes(job);
    assert!(pids.iter().all(|p| processes.contains(p)), "{processes:?}");
    assert!(
        processes.len() > pids.len(),
        "the job's other processes: {processes:?}"
    );
    for pid in processes {
        for what in ["cmdline", "environ"] {
            let bytes = read(&std::path::PathBuf::from(format!("/proc/{pid}/{what}")));
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&key),
                "{pid}'s {what}"
            );
        }
    }
    let dirs = s.node_dirs(job);
    assert_eq!(
        dirs.len(),
        1,
        "one forward (and directory) per node: {dirs:?}"
    );
    assert_eq!(mode(&dirs[0]), 0o700);
    assert_eq!(mode(&dirs[0].join("hub.json")), 0o600);
    assert_eq!(mode(&dirs[0].join("hub.sock")), 0o600);

    let (status, stdout, stderr) = s.cli(&["exec", "--all", "--", "hostname"]);
    assert_eq!(status, 0, "{stderr}");
    let host = warren_tests::slurm::submit_host();
    for engine in &engines {
        let line = format!("[engine {}] {host}", engine.id);
        assert!(stdout.contains(&line), "{line:?} in {stdout}");
    }
    let target = format!("slurm_job={job}");
    let script = "echo job=$SLURM_JOB_ID task=$SLURM_PROCID";
    let (status, stdout, stderr) = s.cli(&["sh", "--where", &target, script]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("job={job} task=")), "{stdout}");

    // A hub restart (a new key, since it has no key file): each node's forward stays up,
    // fetches the new key, and the engines come back under their ids.
    let ids: BTreeSet<u32> = engines.iter().map(|e| e.id).collect();
    let hub = s.cluster.hub.as_mut().expect("hub");
    hub.signal(rustix::process::Signal::TERM);
    hub.wait_for_success("on SIGTERM").await;
    s.cluster.start_hub(&[]);
    let back = s.wait_for_engines(job, 4, LIMIT).await;
    assert_eq!(back.iter().map(|e| e.id).collect::<BTreeSet<_>>(), ids);
    assert_eq!(back.iter().map(|e| e.pid).collect::<Vec<_>>().len(), 4);
    assert!(
        s.job_log(job)
            .contains("the hub restarted; fetched its new key"),
        "{}",
        s.job_log(job)
    );
    let (status, _, stderr) = s.cli(&["exec", "--all", "--", "true"]);
    assert_eq!(status, 0, "{stderr}");

    // `warren engines stop`: the engines leave, then the forwards, and the job completes.
    let (status, _, stderr) = s.cli(&["engines", "stop"]);
    assert_eq!(status, 0, "{stderr}");
    wait_for_clean_end(&s, job, &pids, LIMIT).await;
    let done = s.slurm.wait_for_job(job, &["COMPLETED", "FAILED"], LIMIT);
    assert_eq!(done.state(), "COMPLETED", "{done:?}\n{}", s.job_log(job));
}

#[tokio::test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
async fn scancel_with_tasks_running_loses_or_retries_them_at_once() {
    // Silence would take ten minutes to notice: only the engines' goodbyes can settle their
    // tasks within the test.
    let hub = ["--heartbeat-ms", "60000", "--engine-timeout-ms", "600000"];
    let Some(mut s) = SlurmCluster::start(2, &hub) else {
        return;
    };
    let (job, _) = submit_ok(&s, &["-n", "2"]);
    let engines = s.wait_for_engines(job, 2, LIMIT).await;
    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();
    let client = s.client().await;
    let gate = s.cluster.dir().join("gate");
    let lost = client
        .submit(Job::script(wait_for_gate(&gate)))
        .await
        .expect("submit")[0];
    let retried = client
        .submit(Job::script(wait_for_gate(&gate)).retries(1))
        .await
        .expect("submit")[0];
    wait_for_state(&s, lost, TaskState::Running).await;
    wait_for_state(&s, retried, TaskState::Running).await;
    // An engine outside the job, to retry on.
    s.cluster.add_engine(&[]);
    s.cluster.wait_for_engines(3).await;

    let cancelled = Instant::now();
    s.slurm.scancel(job);
    let deadline = cancelled + LIMIT;
    while !s.engines_of(job).await.is_empty() {
        assert!(Instant::now() < deadline, "the job's engines did not leave");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = cancelled.elapsed();
    let reason = wait_for_state(&s, lost, TaskState::Lost).await;
    let settled = cancelled.elapsed();
    assert!(
        reason.contains("left (SIGTERM) while the task was running"),
        "{reason}"
    );
    std::fs::write(&gate, "").expect("open the gate");
    wait_for_state(&s, retried, TaskState::Succeeded).await;
    let info = client.task(retried).await.expect("task");
    assert_eq!(info.attempts.len(), 2, "{info:?}");
    assert!(
        !engines.iter().any(|e| e.id == info.engine_id),
        "retried elsewhere"
    );
    eprintln!(
        "scancel -> engines gone in {:.0} ms, their task lost in {:.0} ms (the liveness timeout is 600 s)",
        gone.as_secs_f64() * 1000.0,
        settled.as_secs_f64() * 1000.0
    );
    wait_for_clean_end(&s, job, &pids, LIMIT).await;
    let done = s.slurm.wait_for_job(job, &["CANCELLED"], LIMIT);
    assert_eq!(done.state(), "CANCELLED");
}

#[tokio::test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
async fn a_job_that_reaches_its_time_limit_ends_and_its_engines_leave_cleanly() {
    let hub = ["--heartbeat-ms", "60000", "--engine-timeout-ms", "600000"];
    let Some(s) = SlurmCluster::start(2, &hub) else {
        return;
    };
    let (job, _) = submit_ok(&s, &["-n", "2", "--time", "1"]);
    let engines = s.wait_for_engines(job, 2, LIMIT).await;
    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();
    let client = s.client().await;
    let gate = s.cluster.dir().join("gate");
    let task = client
        .submit(Job::script(wait_for_gate(&gate)))
        .await
        .expect("submit")[0];
    wait_for_state(&s, task, TaskState::Running).await;
    // `--time 1` would end the job 60 to 90 s from now (Slurm checks limits every 30 s);
    // ending its limit now takes Slurm's same path (SIGTERM to every process of the job,
    // state TIMEOUT) at its next check, within 30 s.
    s.slurm.expire(job);
    wait_for_clean_end(&s, job, &pids, TIME_LIMIT_CHECK + LIMIT).await;
    let reason = wait_for_state(&s, task, TaskState::Lost).await;
    assert!(reason.contains("left (SIGTERM)"), "{reason}");
    let done = s.slurm.wait_for_job(job, &["TIMEOUT"], LIMIT);
    assert_eq!(done.get("Reason"), Some("TimeLimit"), "{done:?}");
    let log = s.job_log(job);
    assert!(log.contains("forward closed (SIGTERM)"), "{log}");
}

#[tokio::test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
async fn what_cannot_work_fails_with_what_to_do_and_leaves_no_job() {
    let Some(s) = SlurmCluster::start(2, &[]) else {
        return;
    };
    // Slurm refuses a partition it does not have: its own words, and nothing submitted.
    let out = s.submit(&["-n", "1", "--partition", "nope"]);
    assert_ne!(out.status, 0, "{out:?}");
    assert!(
        out.stderr.contains("sbatch refused the job"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("invalid partition specified: nope"),
        "{}",
        out.stderr
    );
    assert_eq!(s.slurm.queue(), Vec::<u32>::new());

    // More CPUs than the node has: accepted, but pending for ever; cancelled at the timeout.
    let out = s.submit(&["-n", "8", "--wait-timeout", "2"]);
    assert_ne!(out.status, 0, "{out:?}");
    let job = out.job().expect("it was submitted");
    assert!(
        out.stderr
            .contains(&format!("job {job} was still pending after 2 s")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("PartitionConfig"), "{}", out.stderr);
    let gone = s.slurm.wait_for_job(job, &["CANCELLED"], LIMIT);
    assert_eq!(gone.state(), "CANCELLED");

    // Nodes that cannot ssh back (here: as a user the submit host does not know): ssh's own
    // message, from the job's log, and the job ends.
    let refused = format!("{} -o User=warren-no-such-user", s.sshd.ssh_command());
    let out = s.submit(&["-n", "2", "--ssh", &refused]);
    assert_ne!(out.status, 0, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the hub at warren-test"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("cannot read its key over ssh"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Permission denied (publickey"),
        "{}",
        out.stderr
    );
    let job = out.job().expect("it was submitted");
    s.slurm
        .wait_for_job(job, &["FAILED", "CANCELLED", "COMPLETED"], LIMIT);
    wait_until(LIMIT, "the nodes' directories are removed", || {
        s.node_dirs(job).is_empty()
    })
    .await;

    // --cancel of a job Slurm does not know.
    let (status, _, stderr) = s.cli(&["engines", "slurm", "--cancel", "999999"]);
    assert_ne!(status, 0);
    assert!(stderr.contains("Slurm knows no job 999999"), "{stderr}");
}

#[test]
fn without_sbatch_the_command_says_what_to_do() {
    let empty = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(binary("warren"))
        .args([
            "--connection-file",
            "/nonexistent/hub.json",
            "engines",
            "slurm",
            "-n",
            "2",
        ])
        .env("PATH", empty.path())
        .output()
        .expect("run warren");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("sbatch was not found on PATH")
            && stderr.contains("a machine that submits Slurm jobs"),
        "{stderr}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
async fn sixty_four_engines_come_from_one_command_and_leave_with_cancel() {
    let Some(s) = SlurmCluster::start(64, &[]) else {
        return;
    };
    // The baseline, in the same Slurm: a 64-task step of `true`.
    let start = Instant::now();
    s.slurm
        .run("srun", &["-n", "64", "true"])
        .unwrap_or_else(|e| panic!("{e}"));
    let baseline = start.elapsed();
    let (job, out) = submit_ok(
        &s,
        &[
            "-n",
            "64",
            "--wait-timeout",
            &REGISTER_LIMIT.as_secs().to_string(),
        ],
    );
    eprintln!(
        "64 engines registered {:.1} s after `warren engines slurm -n 64` started (`srun -n 64 true` took {:.1} s)",
        out.took.as_secs_f64(),
        baseline.as_secs_f64()
    );
    let engines = s.wait_for_engines(job, 64, LIMIT).await;
    let tasks: BTreeSet<u32> = labels(&engines, "slurm_task")
        .iter()
        .map(|t| t.parse().expect("a number"))
        .collect();
    assert_eq!(tasks, (0..64).collect());
    assert_eq!(s.node_dirs(job).len(), 1, "one forward for the node");

    let (status, stdout, stderr) = s.cli(&["engines", "slurm", "--cancel", &job.to_string()]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("its 64 engine(s) left"), "{stdout}");
    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();
    wait_for_clean_end(&s, job, &pids, LIMIT).await;
}
