//! Slurm's own commands, run as children: `sbatch` to submit, `scancel` to cancel,
//! `scontrol show job` to see a job. Their messages are passed through as Slurm wrote them.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A program on PATH, or an error that says what to do.
pub(crate) fn find(program: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    });
    found.with_context(|| {
        format!(
            "{program} was not found on PATH: run this on a machine that submits Slurm jobs (a login node), with Slurm's commands on PATH (`module load slurm` on some clusters)"
        )
    })
}

/// Submits `script` (fed on stdin, so that no file holds it) with these sbatch options;
/// the job id, or sbatch's own message.
pub(crate) async fn submit(sbatch: &Path, options: &[String], script: &str) -> anyhow::Result<u64> {
    let mut child = Command::new(sbatch)
        .arg("--parsable")
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    let mut stdin = child.stdin.take().context("sbatch has no stdin")?;
    stdin.write_all(script.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        bail!(
            "sbatch refused the job ({}): {}",
            output.status,
            if said.is_empty() {
                "it said nothing"
            } else {
                &said
            }
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = stdout.trim().split(';').next().unwrap_or_default();
    id.parse()
        .with_context(|| format!("sbatch printed no job id: {:?} {said}", stdout.trim()))
}

/// Cancels a job (`scancel ID`: Slurm sends its tasks SIGTERM, then SIGKILL after KillWait).
pub(crate) async fn cancel(job: u64) -> anyhow::Result<()> {
    let scancel = find("scancel")?;
    let output = Command::new(&scancel)
        .arg(job.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", scancel.display()))?;
    if !output.status.success() {
        bail!(
            "scancel {job} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A job as `scontrol show job -o` shows it: `JobState`, `Reason`, `NodeList`, `StdOut`...
#[derive(Debug, Clone, Default)]
pub(crate) struct JobInfo {
    fields: Vec<(String, String)>,
}

impl JobInfo {
    /// Parses one line of `scontrol show job -o`.
    pub(crate) fn parse(line: &str) -> Self {
        let mut fields: Vec<(String, String)> = Vec::new();
        for word in line.split_whitespace() {
            // Keys are capitalized (`JobState`, `Socks/Node`); other words continue a value
            // that has spaces in it (a command line, a path).
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
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `PENDING`, `RUNNING`, `COMPLETING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`...
    pub(crate) fn state(&self) -> &str {
        self.get("JobState").unwrap_or("UNKNOWN")
    }

    /// Whether the job is waiting to start.
    pub(crate) fn pending(&self) -> bool {
        matches!(
            self.state(),
            "PENDING" | "CONFIGURING" | "REQUEUED" | "RESV_DEL_HOLD"
        )
    }

    /// Whether the job has ended (or is ending).
    pub(crate) fn ended(&self) -> bool {
        !self.pending() && !matches!(self.state(), "RUNNING" | "SUSPENDED")
    }
}

/// The job as Slurm's controller sees it, or `None` if it does not know the job (never
/// submitted, or finished longer ago than `MinJobAge`).
pub(crate) async fn show(job: u64) -> anyhow::Result<Option<JobInfo>> {
    let scontrol = find("scontrol")?;
    let output = Command::new(&scontrol)
        .args(["show", "job", "-o", &job.to_string()])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", scontrol.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("Invalid job id") {
            return Ok(None);
        }
        bail!(
            "scontrol show job {job} failed ({}): {}",
            output.status,
            stderr.trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.lines().next().map(JobInfo::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_line_is_read_with_values_that_hold_spaces() {
        let line = "JobId=7 JobName=warren-engines JobState=PENDING Reason=PartitionConfig \
                    Command=(null) WorkDir=/home/a b StdOut=/home/a b/.warren/slurm/w-7.log";
        let job = JobInfo::parse(line);
        assert_eq!(job.state(), "PENDING");
        assert!(job.pending() && !job.ended());
        assert_eq!(job.get("Reason"), Some("PartitionConfig"));
        assert_eq!(job.get("WorkDir"), Some("/home/a b"));
        assert_eq!(job.get("StdOut"), Some("/home/a b/.warren/slurm/w-7.log"));
        let done = JobInfo::parse("JobId=7 JobState=TIMEOUT Reason=TimeLimit");
        assert!(done.ended());
    }
}
