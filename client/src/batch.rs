//! Many tasks at once: submitting a batch in one call, finding tasks by id, and waiting for
//! tasks to end.

use futures_util::TryStreamExt;
use warren_proto::v1::{ExecuteRequest, ListTasksRequest, SubmitBatchRequest, TaskInfo};

use crate::{Client, Error, EventKind, Result};

/// The most requests one [`Client::submit_batch`] may carry (the hub's bound; the hub also
/// bounds the whole call to 16 MiB).
pub const MAX_BATCH: usize = 10_000;

/// Ids per `ListTasks` call (the hub's page limit).
const IDS_PER_CALL: usize = 1000;

impl Client {
    /// Submits many jobs in one call, all or none: the hub checks each as `submit` would, and
    /// if it refuses one it submits none, naming the one it refused (its index, from 0). On
    /// success, the task ids each job made, in the order of the jobs.
    ///
    /// ```no_run
    /// use warren::Job;
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let jobs = (1..=3).map(|i| Job::argv(["echo", &i.to_string()]));
    /// let ids = client.submit_batch(jobs).await?;
    /// assert_eq!(ids.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_batch<J>(&self, jobs: impl IntoIterator<Item = J>) -> Result<Vec<Vec<u64>>>
    where
        J: Into<ExecuteRequest>,
    {
        let request = SubmitBatchRequest {
            requests: jobs.into_iter().map(Into::into).collect(),
        };
        let reply = self
            .call(|| {
                let mut execution = self.execution();
                let request = request.clone();
                async move { execution.submit_batch(request).await }
            })
            .await?;
        Ok(reply
            .results
            .into_iter()
            .map(|reply| reply.task_ids)
            .collect())
    }

    /// The records of these tasks, in id order; ids the hub has no task for are left out.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// for task in client.tasks_by_id(&[7, 8, 9]).await? {
    ///     println!("task {} is {}", task.id, task.state().label());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn tasks_by_id(&self, task_ids: &[u64]) -> Result<Vec<TaskInfo>> {
        let mut found = Vec::with_capacity(task_ids.len());
        for chunk in task_ids.chunks(IDS_PER_CALL) {
            let filter = ListTasksRequest {
                task_ids: chunk.to_vec(),
                limit: IDS_PER_CALL as u32,
                ..ListTasksRequest::default()
            };
            found.extend(self.tasks_page(filter).await?.tasks);
        }
        found.sort_by_key(|task| task.id);
        found.dedup_by_key(|task| task.id);
        Ok(found)
    }

    /// Waits until a task has ended (following its events from where it is, without its
    /// output so far), and returns its final record.
    ///
    /// ```no_run
    /// # async fn f(client: warren::Client) -> warren::Result<()> {
    /// let task = client.wait(7).await?;
    /// println!("task 7 ended {}", task.state().label());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(&self, task_id: u64) -> Result<TaskInfo> {
        let info = self.task(task_id).await?;
        if info.state().is_final() {
            return Ok(info);
        }
        self.wait_from(info).await
    }

    /// Waits until the task whose record is `info` has ended, following it from the event
    /// after that record; returns its final record.
    pub async fn wait_from(&self, info: TaskInfo) -> Result<TaskInfo> {
        if info.state().is_final() {
            return Ok(info);
        }
        let mut events = self.follow(info.id, info.next_seq).await?;
        while let Some(event) = events.try_next().await? {
            if matches!(event.kind, EventKind::Result(_)) {
                break;
            }
        }
        // The record has the end once the stream has shown it.
        let info = self.task(info.id).await?;
        if info.state().is_final() {
            Ok(info)
        } else {
            Err(Error::Status(tonic::Status::unavailable(format!(
                "the hub ended the stream of task {} before the task ended",
                info.id
            ))))
        }
    }
}
