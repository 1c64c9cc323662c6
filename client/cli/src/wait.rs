//! `warren wait` and `warren result`: tasks named by id, or selected by their labels.

use warren::proto::{ListTasksRequest, TaskInfo};
use warren::{Client, Outcome};

use crate::cli::{Format, ResultArgs, Selection, WaitArgs};
use crate::output::exit_code_of;

impl Selection {
    /// The ids selected, in id order; an error if labels select none.
    async fn ids(&self, client: &Client) -> anyhow::Result<Vec<u64>> {
        if self.labels.is_empty() {
            return Ok(self.tasks.clone());
        }
        let filter = ListTasksRequest {
            labels: self.labels.iter().cloned().collect(),
            limit: 1000,
            ..ListTasksRequest::default()
        };
        let mut ids = Vec::new();
        let mut pages = Box::pin(client.tasks(filter));
        while let Some(task) = futures_util::TryStreamExt::try_next(&mut pages).await? {
            ids.push(task.id);
        }
        if ids.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            anyhow::bail!(
                "no task has the labels {}; `warren tasks --label KEY=VALUE` lists tasks by label",
                labels.join(", ")
            );
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// The worst of the tasks' exit statuses (0 if all succeeded).
fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> u8 {
    outcomes
        .into_iter()
        .map(|o| exit_code_of(&o))
        .max()
        .unwrap_or(0)
}

fn outcome(info: &TaskInfo) -> Outcome {
    info.result.clone().map_or_else(
        || Outcome::new(info.state(), info.reason.clone()),
        Outcome::from,
    )
}

/// Waits until every selected task has ended; exits with the worst status among them.
pub(crate) async fn wait(client: &Client, args: &WaitArgs) -> anyhow::Result<u8> {
    let ids = args.select.ids(client).await?;
    let found = client.tasks_by_id(&ids).await?;
    let missing: Vec<u64> = {
        let known: std::collections::HashSet<u64> = found.iter().map(|t| t.id).collect();
        ids.iter()
            .copied()
            .filter(|id| !known.contains(id))
            .collect()
    };
    if let Some(id) = missing.first() {
        anyhow::bail!("there is no task {id} (`warren tasks` lists them)");
    }
    let (mut outcomes, mut failed) = (Vec::with_capacity(found.len()), 0usize);
    let total = found.len();
    let live = found.iter().filter(|t| !t.state().is_final()).count();
    if live > 0 {
        eprintln!("warren: waiting for {live} of {total} tasks to end");
    }
    for info in found {
        let info = client.wait_from(info).await?;
        let outcome = outcome(&info);
        if !outcome.succeeded() {
            failed += 1;
            let why = if outcome.error.is_empty() {
                String::new()
            } else {
                format!(": {}", outcome.error)
            };
            eprintln!("warren: task {} {}{why}", info.id, outcome.state.label());
        }
        outcomes.push(outcome);
    }
    if total > 1 {
        eprintln!(
            "warren: {total} tasks ended: {} succeeded, {failed} did not",
            total - failed
        );
    }
    Ok(worst(outcomes))
}

/// Prints each selected task's record; exits with the worst status among them (255 if one
/// does not exist).
/// With --json, each record is a `TaskInfo` document; with -q, nothing is printed.
pub(crate) async fn result(
    client: &Client,
    args: &ResultArgs,
    format: Format,
) -> anyhow::Result<u8> {
    let ids = args.select.ids(client).await?;
    if let [only] = ids.as_slice() {
        return crate::commands::result(client, *only, format).await;
    }
    let mut worst_code = 0;
    for (i, id) in ids.iter().enumerate() {
        if i > 0 && format == Format::Text {
            println!();
        }
        match crate::commands::result(client, *id, format).await {
            Ok(code) => worst_code = worst_code.max(code),
            Err(err) => {
                eprintln!("warren: {}", crate::one_line(&err));
                worst_code = crate::EXIT_WARREN_FAILED;
            }
        }
    }
    Ok(worst_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren::proto::TaskState;

    #[test]
    fn the_worst_status_wins() {
        let ok = Outcome::new(TaskState::Succeeded, "");
        let timed_out = Outcome::new(TaskState::TimedOut, "");
        let aborted = Outcome::new(TaskState::Aborted, "");
        assert_eq!(worst([ok.clone(), ok.clone()]), 0);
        assert_eq!(worst([ok, aborted.clone()]), 1);
        assert_eq!(worst([aborted, timed_out]), 124);
        assert_eq!(worst([]), 0);
    }
}
