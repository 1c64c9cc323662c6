//! Building an `ExecuteRequest`: what to run, how, and where.

use std::collections::HashMap;
use std::time::Duration;
use warren_proto::v1::{Argv, ExecuteRequest, TaskSpec, task_spec};

use crate::placement::Placement;

/// What to run and where, built step by step and turned into an [`ExecuteRequest`].
///
/// ```
/// use std::time::Duration;
/// let request = warren::Job::argv(["uname", "-a"])
///     .all()
///     .timeout(Duration::from_secs(10))
///     .into_request();
/// assert_eq!(request.spec.unwrap().timeout_ms, Some(10_000));
/// ```
#[derive(Clone, Debug)]
pub struct Job {
    spec: TaskSpec,
    placement: Placement,
    labels: HashMap<String, String>,
    retries: u32,
    after: Vec<u64>,
    after_ok: Vec<u64>,
}

impl Job {
    /// Runs a program with arguments; the first item is the program.
    ///
    /// ```
    /// let job = warren::Job::argv(["uname", "-a"]);
    /// ```
    pub fn argv<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_command(task_spec::Command::Argv(Argv {
            args: args.into_iter().map(Into::into).collect(),
        }))
    }

    /// Runs shell text with `sh -c`.
    ///
    /// ```
    /// let job = warren::Job::script("echo $HOSTNAME");
    /// ```
    pub fn script(script: impl Into<String>) -> Self {
        Self::with_command(task_spec::Command::Script(script.into()))
    }

    /// A cell: code to run in sessions (aim it with [`Job::sessions`] or [`Job::group`]).
    ///
    /// ```
    /// let job = warren::Job::cell("x = 6 * 7").group("analysis");
    /// ```
    pub fn cell(code: impl Into<String>) -> Self {
        Self::with_command(task_spec::Command::Code(code.into()))
    }

    /// One cell in each of these sessions, in the order given.
    ///
    /// ```
    /// let job = warren::Job::cell("x").sessions([3, 4]);
    /// ```
    pub fn sessions(self, ids: impl IntoIterator<Item = u64>) -> Self {
        self.place(|p| p.sessions(ids))
    }

    /// One cell in each session of this group.
    ///
    /// ```
    /// let job = warren::Job::cell("import numpy").group("analysis");
    /// ```
    pub fn group(self, name: impl Into<String>) -> Self {
        self.place(|p| p.group(name.into()))
    }

    fn with_command(command: task_spec::Command) -> Self {
        Self {
            spec: TaskSpec {
                command: Some(command),
                ..TaskSpec::default()
            },
            placement: Placement::default(),
            labels: HashMap::new(),
            retries: 0,
            after: Vec::new(),
            after_ok: Vec::new(),
        }
    }

    /// Sets an environment variable for the task.
    ///
    /// ```
    /// let job = warren::Job::script("echo $GREETING").env("GREETING", "hello");
    /// ```
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.env.insert(name.into(), value.into());
        self
    }

    /// Runs the task in this directory on the engine.
    ///
    /// ```
    /// let job = warren::Job::argv(["ls"]).cwd("/tmp");
    /// ```
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.spec.cwd = dir.into();
        self
    }

    /// Feeds these bytes to the task's stdin.
    ///
    /// ```
    /// let job = warren::Job::argv(["wc", "-c"]).stdin(&b"12345"[..]);
    /// ```
    pub fn stdin(mut self, bytes: impl Into<bytes::Bytes>) -> Self {
        self.spec.stdin = bytes.into();
        self
    }

    /// Runs the task on a terminal of `rows` by `cols` (0 for 24 by 80), with `TERM` set to
    /// `term` (empty for xterm-256color): its stdin, stdout and stderr are the terminal, its
    /// output one stream. Needs a caller at the terminal: [`Client::interact`](crate::Client::interact).
    ///
    /// ```
    /// let job = warren::Job::argv(["top"]).tty(50, 132, "xterm-256color");
    /// ```
    pub fn tty(mut self, rows: u16, cols: u16, term: impl Into<String>) -> Self {
        self.spec.tty = Some(warren_proto::v1::Tty {
            rows: rows.into(),
            cols: cols.into(),
            term: term.into(),
        });
        self
    }

    /// Ends the task (SIGTERM, then SIGKILL) if it runs longer than this.
    ///
    /// ```
    /// let job = warren::Job::argv(["sleep", "60"]).timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.spec.timeout_ms = Some(limit.as_millis().min(u128::from(u64::MAX)) as u64);
        self
    }

    /// Runs it again elsewhere, up to `retries` times, if its engine dies while running it.
    ///
    /// ```
    /// let job = warren::Job::script("./simulate").retries(2);
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Labels the task, to find it later with `ListTasks`.
    ///
    /// ```
    /// let job = warren::Job::script("./simulate").label("batch", "b7");
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Holds the task until these tasks have ended, however they end (Slurm's `afterany`).
    ///
    /// ```
    /// let request = warren::Job::script("./collect").after([7, 8]).into_request();
    /// assert_eq!(request.after, vec![7, 8]);
    /// ```
    pub fn after(mut self, tasks: impl IntoIterator<Item = u64>) -> Self {
        self.after.extend(tasks);
        self
    }

    /// Holds the task until these tasks have succeeded; if one ends otherwise, the task ends
    /// aborted, naming it (Slurm's `afterok`).
    ///
    /// ```
    /// let request = warren::Job::script("./report").after_ok([7]).into_request();
    /// assert_eq!(request.after_ok, vec![7]);
    /// ```
    pub fn after_ok(mut self, tasks: impl IntoIterator<Item = u64>) -> Self {
        self.after_ok.extend(tasks);
        self
    }

    /// Runs only on engines with this label (with `all` or `any`).
    ///
    /// ```
    /// let job = warren::Job::script("nvidia-smi").all().on_engines_labelled("gpu", "yes");
    /// ```
    pub fn on_engines_labelled(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.place(|p| p.labelled(key.into(), value.into()))
    }

    /// One task on every engine.
    ///
    /// ```
    /// let job = warren::Job::argv(["hostname"]).all();
    /// ```
    pub fn all(self) -> Self {
        self.place(Placement::all)
    }

    /// One task, on whichever engine the hub picks (the default).
    ///
    /// ```
    /// let job = warren::Job::argv(["hostname"]).any();
    /// ```
    pub fn any(self) -> Self {
        self.place(Placement::any)
    }

    /// One task on each of these engines.
    ///
    /// ```
    /// let job = warren::Job::argv(["hostname"]).engines([1, 3]);
    /// ```
    pub fn engines(self, ids: impl IntoIterator<Item = u32>) -> Self {
        self.place(|p| p.engines(ids))
    }

    fn place(mut self, change: impl FnOnce(&mut Placement)) -> Self {
        change(&mut self.placement);
        self
    }

    /// The request to send.
    ///
    /// ```
    /// let request = warren::Job::argv(["true"]).into_request();
    /// assert!(request.spec.is_some());
    /// ```
    pub fn into_request(self) -> ExecuteRequest {
        ExecuteRequest {
            spec: Some(self.spec),
            targets: Some(self.placement.into_targets()),
            retries: self.retries,
            labels: self.labels,
            after: self.after,
            after_ok: self.after_ok,
        }
    }
}

impl From<Job> for ExecuteRequest {
    fn from(job: Job) -> Self {
        job.into_request()
    }
}
