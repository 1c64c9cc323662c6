//! The private Slurm that the `warren engines slurm` tests run against (tests/slurm/*.sh and
//! `warren_tests::slurm`): it comes up idle and stops with exactly its daemons, runs batch
//! jobs that see Slurm's environment, runs 64 tasks of one job at once on a small machine,
//! ends jobs by scancel and by time limit with SIGTERM (then SIGKILL after KillWait), leaves no
//! job process behind when stopped, lets a job reach the submit host through the test sshd, and
//! two run side by side. Each test is marked ignored, with the reason, where Slurm (or OpenSSH)
//! is not installed (see tests/build.rs).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren_tests::PATIENCE;
use warren_tests::slurm::{KILL_WAIT, Slurm, TIME_LIMIT_CHECK, submit_host};
use warren_tests::sshd::{HOST, Sshd};

/// The states a job ends in.
const ENDED: [&str; 5] = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"];

/// Whether `pid` is still a live process started for `dir` (not a zombie, not a reused pid).
fn runs_in(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Polls `check` every 50 ms for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn read_number(path: &Path) -> Option<u128> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn the_node_comes_up_idle_and_stops_with_exactly_its_daemons() {
    let Some(slurm) = Slurm::start(3) else { return };
    assert_eq!(slurm.node_state(), "idle");
    let node = slurm
        .run("scontrol", &["show", "node", "-o", slurm.node()])
        .expect("scontrol show node");
    assert!(node.contains("CPUTot=3 "), "{node}");
    let dir = slurm.dir().to_owned();
    let pids = slurm.daemon_pids();
    for (name, pid) in &pids {
        assert!(runs_in(*pid, &dir), "{name} (pid {pid}) should run");
    }
    drop(slurm);
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} (pid {pid}) outlived the stop script");
    }
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn a_batch_job_and_its_step_see_their_ids_node_and_submit_host() {
    let Some(slurm) = Slurm::start(2) else { return };
    let dir = slurm.dir().display().to_string();
    let script =
        format!("env > {dir}/batch.env && srun -n 2 sh -c 'env > {dir}/step.$SLURM_PROCID.env'");
    let job = slurm
        .sbatch(&["-n", "2", "--wrap", &script])
        .expect("sbatch");
    let done = slurm.wait_for_job(job, &ENDED, PATIENCE);
    assert_eq!(done.state(), "COMPLETED", "{done:?}");

    let batch = read_env(&slurm.dir().join("batch.env"));
    assert_eq!(batch["SLURM_JOB_ID"], job.to_string());
    assert_eq!(batch["SLURMD_NODENAME"], slurm.node());
    assert_eq!(batch["SLURM_SUBMIT_HOST"], submit_host());
    assert_eq!(batch["SLURM_CONF"], slurm.conf().display().to_string());
    // The batch script is not a step: srun inside it makes step 0.
    assert!(!batch.contains_key("SLURM_STEP_ID"), "{batch:?}");
    for task in 0..2 {
        let step = read_env(&slurm.dir().join(format!("step.{task}.env")));
        assert_eq!(step["SLURM_JOB_ID"], job.to_string());
        assert_eq!(step["SLURM_STEP_ID"], "0");
        assert_eq!(step["SLURM_PROCID"], task.to_string());
        assert_eq!(step["SLURMD_NODENAME"], slurm.node());
        assert_eq!(step["SLURM_SUBMIT_HOST"], submit_host());
    }
}

/// Runs one job whose step has 64 tasks, each held at a gate, and checks they all run at once.
fn sixty_four_tasks_at_once(slurm: &Slurm, extra: &[&str]) {
    let tasks = slurm.dir().join("tasks");
    std::fs::create_dir(&tasks).expect("tasks dir");
    let gate = slurm.dir().join("gate");
    let script = format!(
        "srun {extra} -n 64 sh -c 'touch {tasks}/$SLURM_PROCID; i=0; \
         while [ ! -e {gate} ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done'",
        extra = extra.join(" "),
        tasks = tasks.display(),
        gate = gate.display(),
    );
    let job = slurm
        .sbatch(&[&["-n", "64"], extra, &["--wrap", &script]].concat())
        .expect("sbatch");
    let count = || std::fs::read_dir(&tasks).map_or(0, |d| d.count());
    wait_until(PATIENCE, "64 tasks started", || count() == 64);
    // None has passed the gate: all 64 run at the same time.
    assert_eq!(slurm.job(job).expect("job").state(), "RUNNING");
    std::fs::write(&gate, "").expect("open the gate");
    let done = slurm.wait_for_job(job, &ENDED, PATIENCE);
    assert_eq!(done.state(), "COMPLETED", "{done:?}");
    assert_eq!(done.get("NumTasks"), Some("64"), "{done:?}");
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn sixty_four_tasks_of_one_job_run_at_once_on_a_node_declaring_64_cpus() {
    let Some(slurm) = Slurm::start(64) else {
        return;
    };
    sixty_four_tasks_at_once(&slurm, &[]);
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn sixty_four_tasks_run_at_once_on_two_cpus_with_overcommit_and_pend_without() {
    let Some(slurm) = Slurm::start(2) else { return };
    // Too big for the node: accepted, but pending for ever (a --wait-timeout case).
    let big = slurm
        .sbatch(&["-n", "64", "--wrap", "true"])
        .expect("sbatch");
    wait_until(PATIENCE, "reason PartitionConfig", || {
        slurm
            .job(big)
            .is_some_and(|j| j.state() == "PENDING" && j.get("Reason") == Some("PartitionConfig"))
    });
    slurm.scancel(big);
    sixty_four_tasks_at_once(&slurm, &["--overcommit"]);
}

/// Submits a two-task job: task 0 exits on SIGTERM, and so does task 1 unless `stubborn`.
/// Each writes its pid, and the time it got SIGTERM. Returns the job id once both run.
fn two_task_job(slurm: &Slurm, args: &[&str], stubborn: bool) -> u32 {
    let dir = slurm.dir().display();
    let stubborn = if stubborn { 1 } else { -1 };
    let script = format!(
        "srun -n 2 bash -c 'on_term=\"exit 0\"; [ $SLURM_PROCID = {stubborn} ] && on_term=:; \
         trap \"date +%s%N > {dir}/term.$SLURM_PROCID; $on_term\" TERM; \
         echo $$ > {dir}/pid.$SLURM_PROCID; i=0; \
         while [ $i -lt 1200 ]; do sleep 0.1 & wait $!; i=$((i+1)); done'"
    );
    let job = slurm
        .sbatch(&[args, &["-n", "2", "--wrap", &script]].concat())
        .expect("sbatch");
    wait_until(PATIENCE, "both tasks started", || {
        (0..2).all(|t| read_number(&slurm.dir().join(format!("pid.{t}"))).is_some())
    });
    job
}

fn task_pid(slurm: &Slurm, task: u32) -> u32 {
    read_number(&slurm.dir().join(format!("pid.{task}"))).expect("task pid") as u32
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn scancel_sends_sigterm_then_sigkill_after_kill_wait() {
    let Some(slurm) = Slurm::start(2) else { return };
    let job = two_task_job(&slurm, &[], true);
    let (polite, stubborn) = (task_pid(&slurm, 0), task_pid(&slurm, 1));
    let cancelled_at = now_ns();
    slurm.scancel(job);
    let term = slurm.dir().join("term.0");
    wait_until(PATIENCE, "SIGTERM to task 0", || {
        read_number(&term).is_some()
    });
    let term_at = read_number(&term).expect("term time");
    wait_until(PATIENCE, "task 0 exits", || !alive(polite));
    // The task that ignores SIGTERM gets it too, and lives on until SIGKILL.
    wait_until(PATIENCE, "SIGTERM to task 1", || {
        read_number(&slurm.dir().join("term.1")).is_some()
    });
    wait_until(PATIENCE + KILL_WAIT, "task 1 killed", || !alive(stubborn));
    let killed_at = now_ns();
    let done = slurm.wait_for_job(job, &ENDED, PATIENCE);
    assert_eq!(done.state(), "CANCELLED", "{done:?}");
    eprintln!(
        "scancel -> SIGTERM in {} ms; SIGKILL of the task ignoring it after {} ms (KillWait {:?})",
        term_at.saturating_sub(cancelled_at) / 1_000_000,
        killed_at.saturating_sub(term_at) / 1_000_000,
        KILL_WAIT
    );
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn an_expired_time_limit_times_the_job_out_with_sigterm() {
    let Some(slurm) = Slurm::start(2) else { return };
    let job = two_task_job(&slurm, &["--time", "10"], false);
    slurm.expire(job);
    let done = slurm.wait_for_job(job, &ENDED, TIME_LIMIT_CHECK + PATIENCE);
    assert_eq!(done.state(), "TIMEOUT", "{done:?}");
    assert_eq!(done.get("Reason"), Some("TimeLimit"), "{done:?}");
    for task in 0..2 {
        assert!(read_number(&slurm.dir().join(format!("term.{task}"))).is_some());
        let pid = task_pid(&slurm, task);
        wait_until(PATIENCE, "the task ends", || !alive(pid));
    }
}

#[test]
#[ignore = "takes 60-90 s: `--time 1` is one minute, and Slurm checks time limits every 30 s"]
fn a_one_minute_time_limit_ends_the_job() {
    let Some(slurm) = Slurm::start(2) else { return };
    let job = two_task_job(&slurm, &["--time", "1"], false);
    let limit = Duration::from_secs(60) + TIME_LIMIT_CHECK + PATIENCE;
    let done = slurm.wait_for_job(job, &ENDED, limit);
    assert_eq!(done.state(), "TIMEOUT", "{done:?}");
    eprintln!("ran for {:?} with --time 1", done.get("RunTime"));
}

#[test]
#[cfg_attr(
    not(all(has_slurm, has_sshd)),
    ignore = "needs Slurm and sshd: apt-get install slurmctld slurmd slurm-client munge openssh-server"
)]
fn a_job_reaches_the_submit_host_through_the_test_sshd() {
    let Some(slurm) = Slurm::start(2) else { return };
    let Some(sshd) = Sshd::start(slurm.dir()) else {
        return;
    };
    // The job inherits the submitter's environment (sbatch's default --export=ALL), so a
    // command line like WARREN_SSH reaches it; the test host name stands for the submit host.
    let out = slurm.dir().join("ssh.out");
    let script = format!(
        "$TEST_SSH {HOST} echo reached-from-job-$SLURM_JOB_ID > {}",
        out.display()
    );
    let output = slurm
        .command("sbatch")
        .env("TEST_SSH", sshd.ssh_command())
        .args(["--parsable", "--wrap", &script])
        .output()
        .expect("sbatch");
    assert!(output.status.success(), "{output:?}");
    let job: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("job id");
    let done = slurm.wait_for_job(job, &ENDED, PATIENCE);
    assert_eq!(done.state(), "COMPLETED", "{done:?}");
    let said = std::fs::read_to_string(&out).expect("ssh output");
    assert_eq!(said.trim(), format!("reached-from-job-{job}"));
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn stopping_ends_a_job_process_that_escaped_slurm() {
    let Some(slurm) = Slurm::start(2) else { return };
    // The batch script (sh) dies on SIGTERM; its child ignores SIGTERM and is reparented, so
    // proctrack/linuxproc loses it and Slurm's SIGKILL never reaches it.
    let pid_file = slurm.dir().join("escapee");
    let script = format!(
        "bash -c 'trap \"\" TERM; echo $$ > {}; i=0; while [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done'",
        pid_file.display()
    );
    slurm.sbatch(&["--wrap", &script]).expect("sbatch");
    wait_until(PATIENCE, "the job's child runs", || {
        read_number(&pid_file).is_some()
    });
    let escapee = read_number(&pid_file).expect("pid") as u32;
    assert!(alive(escapee));
    drop(slurm);
    assert!(!alive(escapee), "pid {escapee} outlived the stop script");
}

#[test]
#[cfg_attr(
    not(has_slurm),
    ignore = "needs Slurm: apt-get install slurmctld slurmd slurm-client munge"
)]
fn two_instances_run_side_by_side_and_stop_separately() {
    let starting = std::thread::spawn(|| Slurm::start(2));
    let Some(a) = Slurm::start(2) else { return };
    let Some(b) = starting.join().expect("second start") else {
        return;
    };
    let port = |s: &Slurm| {
        std::fs::read_to_string(s.conf())
            .expect("conf")
            .lines()
            .find(|l| l.starts_with("SlurmctldPort="))
            .map(str::to_owned)
    };
    assert_ne!(port(&a), port(&b));

    let gate = a.dir().join("gate");
    let hold = format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done",
        gate.display()
    );
    let job = a.sbatch(&["--wrap", &hold]).expect("sbatch");
    a.wait_for_job(job, &["RUNNING"], PATIENCE);
    assert_eq!(a.queue(), vec![job]);
    assert_eq!(b.queue(), Vec::<u32>::new(), "b sees a's job");

    let a_pids = a.daemon_pids();
    drop(a);
    for (name, pid) in a_pids {
        assert!(!alive(pid), "a's {name} outlived its stop");
    }
    for (name, pid) in b.daemon_pids() {
        assert!(runs_in(pid, b.dir()), "b's {name} stopped with a");
    }
    b.run("srun", &["-N1", "-n1", "true"])
        .expect("b runs jobs after a stopped");
}
