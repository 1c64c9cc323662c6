//! The stdin the hub holds for tasks that have not started, bounded by `--max-input-held`.
//!
//! A task's stdin stays in the hub from its submission until its engine says it started (or
//! it ends): in the queue, then in the engine's message stream, where an engine that does not
//! read keeps it. Each such task holds its stdin's size of the budget (a request's stdin counts
//! once per task, as each task sends it on its own stream). A request that would take the hub
//! past the budget is refused with RESOURCE_EXHAUSTED; once the budget is full, Execute and
//! Submit are refused before their bodies are read ([`layer`]), so a flood of large requests
//! costs the hub neither memory nor the time to read them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::Status;

use crate::error::HubError;
use crate::gate::{Check, GateLayer};

/// The calls that bring stdin.
const SUBMITTING: &[&str] = &[
    "/warren.v1.Execution/Execute",
    "/warren.v1.Execution/Submit",
    "/warren.v1.Execution/Interact",
    "/warren.v1.Execution/SubmitBatch",
];

/// Bytes of stdin held for tasks not yet started, and their bound.
#[derive(Debug)]
pub(crate) struct InputBudget {
    held: AtomicU64,
    max: u64,
}

/// One task's share of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct InputHold {
    budget: Arc<InputBudget>,
    bytes: u64,
}

impl Drop for InputHold {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl InputBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicU64::new(0),
            max,
        })
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether nothing more can be held.
    pub(crate) fn is_full(&self) -> bool {
        self.held() >= self.max
    }

    /// Refuses `tasks` tasks of `stdin` bytes each if they would take the budget past its
    /// bound. Callers check and then [`hold`](Self::hold) under the hub's lock.
    pub(crate) fn check(&self, stdin: u64, tasks: usize) -> Result<(), HubError> {
        let more = stdin.saturating_mul(tasks as u64);
        if more == 0 || self.held().saturating_add(more) <= self.max {
            return Ok(());
        }
        Err(full(self.held(), self.max, Some(more)))
    }

    /// Holds `bytes` for one task, whatever the bound (for work already accepted, such as a
    /// task queued again for a retry).
    pub(crate) fn hold(self: &Arc<Self>, bytes: u64) -> Option<InputHold> {
        if bytes == 0 {
            return None;
        }
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Some(InputHold {
            budget: self.clone(),
            bytes,
        })
    }
}

fn full(held: u64, max: u64, more: Option<u64>) -> HubError {
    let adding = more.map_or_else(String::new, |more| {
        format!(" and this request would add {more} (its stdin once per task)")
    });
    HubError::exhausted(format!(
        "the hub holds {held} bytes of stdin for tasks that have not started (--max-input-held {max}){adding}; \
         wait for queued tasks to start or abort some, or put large inputs in a file on the engines' machine"
    ))
}

/// Refuses Execute and Submit before reading their bodies while `budget` is full.
pub(crate) fn layer(budget: Arc<InputBudget>) -> GateLayer<Arc<InputBudget>> {
    GateLayer::new(budget)
}

impl Check for Arc<InputBudget> {
    fn refuse(&self, method: &str, _headers: &http::HeaderMap) -> Option<Status> {
        if self.is_full() && SUBMITTING.contains(&method) {
            return Some(full(self.held(), self.max, None).into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_counted_until_dropped_and_the_bound_refuses_more() {
        let budget = InputBudget::new(100);
        assert!(budget.check(40, 2).is_ok());
        let holds: Vec<_> = (0..2).filter_map(|_| budget.hold(40)).collect();
        assert_eq!(budget.held(), 80);
        let refused = Status::from(budget.check(30, 1).expect_err("over the bound"));
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("--max-input-held"));
        assert!(budget.check(0, 1000).is_ok(), "no stdin, no cost");
        assert!(budget.hold(0).is_none());
        let extra = budget.hold(30);
        assert!(budget.is_full());
        drop(holds);
        drop(extra);
        assert_eq!(budget.held(), 0);
    }
}
