//! What `warren map`'s flags ask (the flags themselves are `crate::cli::MapArgs`): the job
//! for one command line, the engines that may run it, and `-j` when not given.

use warren::{Client, Job};

use crate::cli::MapArgs;

/// The most tasks in flight `-j` takes by default (the hub's default bound on the follow
/// streams of one client process is 256; each task in flight has one).
const DEFAULT_JOBS_MAX: usize = 256;

impl MapArgs {
    /// The job for one command line.
    pub(crate) fn job(&self, command: Vec<String>) -> Job {
        let flags = crate::commands::JobFlags {
            targets: &self.targets,
            timeout: self.timeout,
            env: &self.env,
            cwd: self.cwd.as_ref(),
            labels: &self.labels,
            engine_labels: &self.engine_labels,
        };
        self.after
            .apply(flags.apply(Job::argv(command)))
            .retries(self.retries)
    }

    /// The engines that may run the tasks: their ids and slots.
    async fn engines(&self, client: &Client) -> anyhow::Result<Vec<(u32, u32)>> {
        let engines = client.engines().await?;
        let listed = &self.targets.engines;
        Ok(engines
            .into_iter()
            .filter(|e| listed.is_empty() || listed.contains(&e.id))
            .filter(|e| {
                self.engine_labels
                    .iter()
                    .all(|(k, v)| e.labels.get(k) == Some(v))
            })
            .map(|e| (e.id, e.slots))
            .collect())
    }

    /// How many tasks each argument makes: one, or one per engine with --all or --engine.
    pub(crate) async fn tasks_per_argument(&self, client: &Client) -> anyhow::Result<usize> {
        Ok(if self.targets.all {
            self.engines(client).await?.len().max(1)
        } else if !self.targets.engines.is_empty() {
            self.targets.engines.len()
        } else {
            1
        })
    }

    /// `-j` when not given: twice the slots of the engines that may run the tasks (so each
    /// has the next task waiting when one ends), at least one argument's tasks.
    pub(crate) async fn default_jobs(&self, client: &Client) -> anyhow::Result<usize> {
        let slots: usize = self
            .engines(client)
            .await?
            .iter()
            .map(|&(_, slots)| slots as usize)
            .sum();
        let fan = self.tasks_per_argument(client).await?;
        Ok((2 * slots).clamp(fan, DEFAULT_JOBS_MAX.max(fan)))
    }
}
