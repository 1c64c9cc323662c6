//! A private single-node Slurm for tests: `tests/slurm/start.sh` under a temp dir (its own
//! munged, slurmctld and slurmd, config, state and free loopback ports), reached by clients
//! through `SLURM_CONF`, and stopped by `tests/slurm/stop.sh` when dropped, even when the test
//! panics. Several may run at once. There is no accounting daemon (no `sacct`): job states come
//! from `scontrol show job`, which keeps a finished job for `MinJobAge` (300 s).
//!
//! The node is this machine under its own host name, declared with as many CPUs as the test
//! asks for (`SlurmdParameters=config_overrides`), so one job can run 64 tasks on two cores.
//! `KillWait` is 5 s: a cancelled or timed-out task gets SIGTERM, and SIGKILL 5 s later.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

use crate::process::require_tool;

/// The Slurm programs the harness and its tests use.
const TOOLS: [(&str, &[&str]); 9] = [
    ("munged", &["/usr/sbin/munged"]),
    ("slurmctld", &["/usr/sbin/slurmctld"]),
    ("slurmd", &["/usr/sbin/slurmd"]),
    ("sbatch", &[]),
    ("srun", &[]),
    ("squeue", &[]),
    ("scancel", &[]),
    ("scontrol", &[]),
    ("sinfo", &[]),
];

/// The environment variable that makes a missing Slurm a failure instead of a skip (CI).
pub const REQUIRE: &str = "WARREN_REQUIRE_SLURM";

/// KillWait in the test Slurm: seconds between a task's SIGTERM and its SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often Slurm's controller checks time limits (fixed in its code): a job passes its
/// limit by up to this much before it is timed out.
pub const TIME_LIMIT_CHECK: Duration = Duration::from_secs(30);

/// A running private Slurm.
#[derive(Debug)]
pub struct Slurm {
    conf: PathBuf,
    node: String,
    cpus: u32,
    dir: TempDir,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("slurm")
        .join(name)
}

impl Slurm {
    /// Starts one whose node declares `cpus` CPUs, and waits until it runs jobs; `None` (said
    /// loudly) when Slurm is not installed, a failure instead when `WARREN_REQUIRE_SLURM` is set.
    pub fn start(cpus: u32) -> Option<Self> {
        for (tool, extra) in TOOLS {
            require_tool(tool, extra, REQUIRE)?;
        }
        // Unix socket paths are short (107 bytes) and slurmd's step sockets live in here.
        let temp = std::env::temp_dir();
        let base = if temp.as_os_str().len() <= 32 {
            temp
        } else {
            PathBuf::from("/tmp")
        };
        let dir = tempfile::Builder::new()
            .prefix("slurm-")
            .tempdir_in(base)
            .expect("a temp dir for Slurm");
        let output = Command::new("bash")
            .arg(script("start.sh"))
            .arg(dir.path())
            .args(["--cpus", &cpus.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run tests/slurm/start.sh");
        assert!(
            output.status.success(),
            "tests/slurm/start.sh failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let conf = dir.path().join("slurm.conf");
        let node = std::fs::read_to_string(&conf)
            .expect("slurm.conf")
            .lines()
            .find_map(|l| {
                l.strip_prefix("NodeName=")?
                    .split(' ')
                    .next()
                    .map(str::to_owned)
            })
            .expect("a NodeName line in slurm.conf");
        Some(Self {
            conf,
            node,
            cpus,
            dir,
        })
    }

    /// Its config file, for `SLURM_CONF`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Its directory: config, logs (`log/`), state, spool, and the daemons' pid files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node's name (this machine's short host name).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The CPUs the node declares.
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// Points `command` at this Slurm: `SLURM_CONF` set, and no Slurm variables inherited from
    /// an allocation the tests themselves might run in.
    pub fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                command.env_remove(name.as_ref());
            }
        }
        command.env("SLURM_CONF", &self.conf)
    }

    /// A Slurm client command for this instance, run in its directory (where batch jobs'
    /// `slurm-ID.out` files then go).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        self.env(&mut command)
            .current_dir(self.dir())
            .stdin(Stdio::null());
        command
    }

    /// Runs a client command; its stdout, or what it said on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Submits a batch job (`sbatch --parsable ARGS`); its id, or sbatch's message.
    pub fn sbatch(&self, args: &[&str]) -> Result<u32, String> {
        let out = self.run("sbatch", &[&["--parsable"], args].concat())?;
        let id = out.trim().split(';').next().unwrap_or_default();
        id.parse()
            .map_err(|_| format!("sbatch printed no job id: {out:?}"))
    }

    /// Cancels a job (`scancel ID`): its tasks get SIGCONT and SIGTERM, SIGKILL after KillWait.
    pub fn scancel(&self, job: u32) {
        if let Err(e) = self.run("scancel", &[&job.to_string()]) {
            panic!("{e}");
        }
    }

    /// Ends a running job's time limit now (`scontrol update TimeLimit=0`, allowed to
    /// SlurmUser, which the tests run as): Slurm times it out, exactly as at the end of
    /// `--time`, at its next time-limit check, within [`TIME_LIMIT_CHECK`].
    pub fn expire(&self, job: u32) {
        if let Err(e) = self.run(
            "scontrol",
            &["update", &format!("JobId={job}"), "TimeLimit=0"],
        ) {
            panic!("{e}");
        }
    }

    /// A job as `scontrol show job` sees it, or `None` if the controller doesn't know it.
    pub fn job(&self, job: u32) -> Option<Job> {
        let out = self
            .run("scontrol", &["show", "job", "-o", &job.to_string()])
            .ok()?;
        let line = out.lines().next()?;
        Some(Job::parse(line))
    }

    /// The jobs in the queue (pending, running or completing).
    pub fn queue(&self) -> Vec<u32> {
        self.run("squeue", &["-h", "-o", "%A"])
            .unwrap_or_else(|e| panic!("{e}"))
            .split_whitespace()
            .filter_map(|id| id.parse().ok())
            .collect()
    }

    /// The node's state as `sinfo` prints it (`idle`, `allocated`, `mixed`, `down`...).
    pub fn node_state(&self) -> String {
        self.run("sinfo", &["-h", "-n", &self.node, "-o", "%T"])
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_owned()
    }

    /// Waits until the job's state is one of `states` (e.g. `RUNNING`, `COMPLETED`,
    /// `CANCELLED`, `TIMEOUT`), for at most `limit`; the job then.
    pub fn wait_for_job(&self, job: u32, states: &[&str], limit: Duration) -> Job {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.job(job);
            if let Some(seen) = &seen
                && states.contains(&seen.state())
            {
                return seen.clone();
            }
            assert!(
                Instant::now() < deadline,
                "job {job} did not reach {states:?} in {limit:?}: {seen:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemons' pids, as the start script recorded them.
    pub fn daemon_pids(&self) -> Vec<(&'static str, u32)> {
        ["munged", "slurmctld", "slurmd"]
            .into_iter()
            .map(|name| {
                let path = self.dir().join(format!("{name}.pid"));
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no pid in {}", path.display()));
                (name, pid)
            })
            .collect()
    }

    /// The last lines of each daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["slurmctld", "slurmd", "munged"] {
            let path = self.dir().join("log").join(format!("{name}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            all.push_str(&format!("----- {} -----\n{tail}\n", path.display()));
        }
        all
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let stopped = Command::new("bash")
            .arg(script("stop.sh"))
            .arg(self.dir())
            .stdin(Stdio::null())
            .output();
        match stopped {
            Ok(out) if out.status.success() && out.stderr.is_empty() => {}
            Ok(out) => eprintln!(
                "tests/slurm/stop.sh {} ({}): {}",
                self.dir().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cannot run tests/slurm/stop.sh: {e}"),
        }
    }
}

/// A job's fields from `scontrol show job -o` (`JobState`, `Reason`, `NodeList`, `NumTasks`...).
#[derive(Debug, Clone)]
pub struct Job {
    fields: Vec<(String, String)>,
}

impl Job {
    fn parse(line: &str) -> Self {
        let mut fields: Vec<(String, String)> = Vec::new();
        for word in line.split_whitespace() {
            // Keys are capitalized (`JobState`, `Socks/Node`); other words continue a value
            // with spaces in it (a command line, a path).
            match word.split_once('=') {
                Some((key, value)) if key.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    fields.push((key.to_owned(), value.to_owned()));
                }
                _ => {
                    if let Some((_, value)) = fields.last_mut() {
                        value.push(' ');
                        value.push_str(word);
                    }
                }
            }
        }
        Self { fields }
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Its state: `PENDING`, `RUNNING`, `COMPLETING`, `COMPLETED`, `CANCELLED`, `TIMEOUT`,
    /// `FAILED`...
    pub fn state(&self) -> &str {
        self.get("JobState").unwrap_or("")
    }
}

/// This machine's host name, which `sbatch` gives jobs as `SLURM_SUBMIT_HOST`.
pub fn submit_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
