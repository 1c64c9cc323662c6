//! Submitting: one request or a batch of them, all or none, with their dependencies.
//!
//! A batch is checked whole under one lock: every request's targets and dependencies, then
//! the room in the queues and the input budget for all of its tasks together. If any of it
//! is refused nothing is submitted, so a client that retries a refused batch never submits a
//! task twice (per-item results would leave it to find out which went in).
//!
//! A dependency is judged by what the hub knows of it: a task in memory by its state (an end
//! decided counts, even before it is committed); one that left memory lately by the end it
//! left with (`Departed`); any other by the history, looked up before taking the lock (it is
//! then a task that ended, possibly purged since). A task that leaves memory between that
//! look and the lock is one that left lately: no second look is needed for it.

use std::collections::HashMap;
use warren_proto::now_us;
use warren_proto::v1::{ExecuteRequest, TaskState};

use super::deps::{Standing, standing, waiting_reason};
use super::task::Task;
use super::{Hub, State};
use crate::error::HubError;
use crate::model::{Submission, Submitter};
use crate::store::PastTask;
use crate::validate;

/// Looks in the history at most this many times for tasks that leave memory meanwhile.
const LOOKS: usize = 4;

/// Why a submission under the lock could not go on.
pub(super) enum Refusal {
    /// Refused, with a reason for the caller.
    Refused(HubError),
    /// These dependencies are not in memory: the history must say how they ended.
    Look(Vec<u64>),
}

impl From<HubError> for Refusal {
    fn from(err: HubError) -> Self {
        Self::Refused(err)
    }
}

/// A request's dependencies, as they stand.
#[derive(Default)]
struct Plan {
    /// Not ended: the tasks wait for them (id, needs success).
    live: Vec<(u64, bool)>,
    /// One was to succeed and did not: the tasks are aborted at once, saying why.
    doomed: Option<String>,
}

impl Hub {
    /// Submits checked requests, all or none; the tasks each made, request by request. The
    /// errors of a request in a batch name its index (`in_batch`).
    pub(crate) async fn submit_batch(
        &self,
        requests: Vec<ExecuteRequest>,
        submitter: Submitter,
        in_batch: bool,
    ) -> Result<Vec<Vec<u64>>, HubError> {
        let requests = if in_batch {
            validate::batch(requests)?
        } else {
            requests
                .into_iter()
                .map(validate::request)
                .collect::<Result<_, _>>()?
        };
        let mut past = HashMap::new();
        for _ in 0..LOOKS {
            let tried =
                self.update(|state| state.submit_all(&requests, &past, submitter, in_batch));
            match tried {
                Ok(ids) => return Ok(ids),
                Err(Refusal::Refused(err)) => return Err(err),
                Err(Refusal::Look(ids)) => past.extend(self.store.past_tasks(ids).await?),
            }
        }
        Err(HubError::Precondition(
            "the tasks this request waits for kept changing while it was checked; submit it again"
                .into(),
        ))
    }
}

impl State {
    /// Creates the tasks of checked requests, all or none, knowing `past` of the dependencies
    /// not in memory.
    pub(super) fn submit_all(
        &mut self,
        requests: &[ExecuteRequest],
        past: &HashMap<u64, PastTask>,
        submitter: Submitter,
        in_batch: bool,
    ) -> Result<Vec<Vec<u64>>, Refusal> {
        if !self.accepting {
            return Err(HubError::Stopping.into());
        }
        let at = |index: usize, err: HubError| {
            if in_batch {
                HubError::in_batch(index, err)
            } else {
                err
            }
        };
        let mut plans = Vec::with_capacity(requests.len());
        let mut look = Vec::new();
        let (mut tasks, mut stdin) = (0usize, 0u64);
        for (index, request) in requests.iter().enumerate() {
            let targets = request.targets.clone().unwrap_or_default();
            let placements = self
                .placements(targets.selector, &targets.engine_labels)
                .map_err(|err| at(index, err))?;
            let plan = self
                .plan(request, past, &mut look)
                .map_err(|err| at(index, err))?;
            let bytes = request.spec.as_ref().map_or(0, |s| s.stdin.len()) as u64;
            tasks += placements.len();
            stdin = stdin.saturating_add(bytes.saturating_mul(placements.len() as u64));
            plans.push((placements, plan, targets.engine_labels));
        }
        if !look.is_empty() {
            look.sort_unstable();
            look.dedup();
            return Err(Refusal::Look(look));
        }
        self.check_room(tasks, submitter)?;
        self.input.check(stdin, 1)?;
        let limits = self.settings.log_limits;
        let mut all = Vec::with_capacity(requests.len());
        for (request, (placements, plan, engine_labels)) in requests.iter().zip(plans) {
            let spec = request.spec.clone().unwrap_or_default();
            let mut ids = Vec::with_capacity(placements.len());
            for pinned in placements {
                self.last_task_id += 1;
                let id = self.last_task_id;
                let asked = Submission {
                    spec: spec.clone(),
                    pinned,
                    engine_labels: engine_labels.clone(),
                    labels: request.labels.clone(),
                    retries: request.retries,
                    submitter,
                    submitted_us: now_us(),
                    session_id: None,
                    after: request.after.clone(),
                    after_ok: request.after_ok.clone(),
                };
                let waiting = match (&plan.doomed, plan.live.is_empty()) {
                    (Some(why), _) => Some(why.clone()),
                    (None, false) => Some(waiting_reason(&plan.live)),
                    (None, true) => None,
                };
                let (mut task, writes) = Task::create(id, asked, limits, waiting);
                self.write(writes);
                if let Some(why) = &plan.doomed {
                    let end = task.end(TaskState::Aborted, why.clone());
                    self.tasks.insert(id, task);
                    self.write(end);
                } else if plan.live.is_empty() {
                    self.tasks.insert(id, task);
                    self.enqueue(id);
                } else {
                    self.tasks.insert(id, task);
                    self.hold(id, submitter.pid, &plan.live);
                }
                ids.push(id);
            }
            all.push(ids);
        }
        tracing::debug!(
            requests = all.len(),
            tasks,
            uid = submitter.uid,
            pid = submitter.pid,
            "submitted"
        );
        self.dispatch();
        Ok(all)
    }

    /// How a request's dependencies stand; those neither in memory nor in `past` are added
    /// to `look`.
    fn plan(
        &self,
        request: &ExecuteRequest,
        past: &HashMap<u64, PastTask>,
        look: &mut Vec<u64>,
    ) -> Result<Plan, HubError> {
        let mut plan = Plan::default();
        let deps = request.after.iter().map(|&d| (d, false));
        for (dep, ok) in deps.chain(request.after_ok.iter().map(|&d| (d, true))) {
            let known = match self.tasks.get(&dep) {
                Some(task) if task.row.state.is_final() => PastTask::Ended(task.row.state),
                Some(_) => PastTask::Live,
                None if dep > self.last_task_id => return Err(self.unknown_task(dep)),
                // Not read from the history, or live there but gone from memory since: it
                // ended, and if that was lately memory still says how.
                None => match past.get(&dep) {
                    Some(PastTask::Live) | None => match self.departed.end_of(dep) {
                        Some(known) => known,
                        None => {
                            look.push(dep);
                            continue;
                        }
                    },
                    Some(&known) => known,
                },
            };
            match standing(dep, ok, known).map_err(HubError::Precondition)? {
                Standing::Live => plan.live.push((dep, ok)),
                Standing::Met => {}
                Standing::Failed(why) => plan.doomed = plan.doomed.or(Some(why)),
            }
        }
        Ok(plan)
    }
}
