//! A hub, a private Slurm and a private sshd together, for `warren engines slurm`: this
//! machine is both the submit host and the only node, and the nodes reach the hub through the
//! test sshd under its host alias ([`HOST`], given as `--hub-host`). The nodes' directories go
//! under a short `TMPDIR` of the test's own, so that the test can find and check them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use warren::Client;
use warren::proto::EngineInfo;

use crate::slurm::Slurm;
use crate::sshd::{HOST, Sshd};
use crate::{Cluster, PATIENCE, binary, eventually};

/// The hub, Slurm and sshd. Slurm is stopped first (its stop script ends the jobs and any job
/// process left), then sshd, then the hub.
#[derive(Debug)]
pub struct SlurmCluster {
    /// The private Slurm.
    pub slurm: Slurm,
    /// The private sshd the nodes reach the hub through.
    pub sshd: Sshd,
    /// The hub (and any local engines).
    pub cluster: Cluster,
}

/// What `warren engines slurm` did.
#[derive(Debug)]
pub struct Submitted {
    /// Its exit status (-1 if killed by a signal).
    pub status: i32,
    /// What it printed.
    pub stdout: String,
    /// What it said on stderr.
    pub stderr: String,
    /// How long it took.
    pub took: Duration,
}

impl Submitted {
    /// The job id it printed (`submitted Slurm job ID`), if any.
    pub fn job(&self) -> Option<u32> {
        let rest = self.stdout.split("submitted Slurm job ").nth(1)?;
        rest.split(' ').next()?.parse().ok()
    }
}

impl SlurmCluster {
    /// Starts the three (the hub with `hub_args`) on a node of `cpus` CPUs; `None`, said
    /// loudly, when Slurm or OpenSSH is missing.
    pub fn start(cpus: u32, hub_args: &[&str]) -> Option<Self> {
        let slurm = Slurm::start(cpus)?;
        let cluster = Cluster::hub_with(hub_args);
        let sshd = Sshd::start(cluster.dir())?;
        std::fs::create_dir(slurm.dir().join("t")).expect("the nodes' TMPDIR");
        std::fs::create_dir(slurm.dir().join("logs")).expect("the jobs' log directory");
        Some(Self {
            slurm,
            sshd,
            cluster,
        })
    }

    /// Where the nodes make their directories (their `TMPDIR`).
    pub fn node_tmp(&self) -> PathBuf {
        self.slurm.dir().join("t")
    }

    /// Where the jobs' logs go (`--log-dir`).
    pub fn log_dir(&self) -> PathBuf {
        self.slurm.dir().join("logs")
    }

    /// `warren` for this hub, Slurm and sshd, to add arguments to.
    pub fn warren(&self) -> Command {
        let warren = binary("warren");
        let mut command = self.slurm.command(&warren.to_string_lossy());
        command
            .arg("--connection-file")
            .arg(&self.cluster.connection_file)
            .env("WARREN_SSH", self.sshd.ssh_command())
            .env("TMPDIR", self.node_tmp())
            .env("RUST_LOG", "info");
        command
    }

    /// Runs `warren engines slurm ARGS --hub-host HOST --log-dir ...`.
    pub fn submit(&self, args: &[&str]) -> Submitted {
        let mut command = self.warren();
        command
            .args(["engines", "slurm"])
            .args(args)
            .args(["--hub-host", HOST, "--log-dir"])
            .arg(self.log_dir());
        let start = Instant::now();
        let output = command.output().expect("run warren engines slurm");
        submitted(output, start.elapsed())
    }

    /// Runs `warren ARGS` against the hub; (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.warren().args(args).output().expect("run warren");
        let said = submitted(output, Duration::ZERO);
        (said.status, said.stdout, said.stderr)
    }

    /// A client of the hub (of its current start).
    pub async fn client(&self) -> Client {
        self.cluster.client().await
    }

    /// The engines of Slurm job `job` registered now.
    pub async fn engines_of(&self, job: u32) -> Vec<EngineInfo> {
        let job = job.to_string();
        let engines = match Client::connect(&self.cluster.connection_file).await {
            Ok(client) => client.engines().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        engines
            .into_iter()
            .filter(|e| e.labels.get("slurm_job") == Some(&job))
            .collect()
    }

    /// Waits until job `job` has `n` engines registered; them.
    pub async fn wait_for_engines(&self, job: u32, n: usize, limit: Duration) -> Vec<EngineInfo> {
        let seen = eventually(limit, || async {
            let engines = self.engines_of(job).await;
            if engines.len() == n {
                Ok(engines)
            } else {
                Err(engines.len())
            }
        })
        .await;
        match seen {
            Ok(engines) => engines,
            Err(count) => panic!(
                "job {job}: expected {n} engines, saw {count}\n{}",
                self.job_log(job)
            ),
        }
    }

    /// The directories the nodes made for job `job`.
    pub fn node_dirs(&self, job: u32) -> Vec<PathBuf> {
        let prefix = format!("warren-slurm-{job}-");
        std::fs::read_dir(self.node_tmp())
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Job `job`'s log, for failure messages.
    pub fn job_log(&self, job: u32) -> String {
        let path = self.log_dir().join(format!("warren-engines-{job}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        format!("----- {} -----\n{text}", path.display())
    }

    /// The job script Slurm stored for `job`.
    pub fn stored_script(&self, job: u32) -> String {
        self.slurm
            .run(
                "scontrol",
                &["write", "batch_script", &job.to_string(), "-"],
            )
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn submitted(output: Output, took: Duration) -> Submitted {
    Submitted {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took,
    }
}

impl SlurmCluster {
    /// The live processes of job `job` in this Slurm (its environment says so): the batch
    /// script, the sruns, the forwards and their ssh, the engines, their tasks.
    pub fn job_processes(&self, job: u32) -> Vec<u32> {
        let conf = format!("SLURM_CONF={}", self.slurm.conf().display());
        let id = format!("SLURM_JOB_ID={job}");
        processes(|_, environ| {
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            vars.contains(&conf.as_bytes()) && vars.contains(&id.as_bytes())
        })
    }
}

/// The live processes whose command line mentions `text`.
pub fn processes_mentioning(text: &str) -> Vec<u32> {
    processes(|cmdline, _| {
        String::from_utf8_lossy(cmdline)
            .replace('\0', " ")
            .contains(text)
    })
}

/// The live processes for which `check(cmdline, environ)` holds.
fn processes(check: impl Fn(&[u8], &[u8]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && alive(*pid))
        .filter(|pid| {
            let cmdline = read(Path::new(&format!("/proc/{pid}/cmdline")));
            let environ = read(Path::new(&format!("/proc/{pid}/environ")));
            check(&cmdline, &environ)
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Polls `check` every 20 ms for at most `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bytes of a file, or nothing.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Long enough for a job to start and its engines to register on a loaded machine.
pub const REGISTER_LIMIT: Duration = Duration::from_secs(60);

/// `PATIENCE`, for the waits that are not about registering.
pub const LIMIT: Duration = PATIENCE;
