//! The time the hub's liveness and deadlines run on: the system's monotonic clock, or in tests
//! one moved by hand, so that timing logic is tested without sleeping.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the hub reads the time for heartbeats, write-offs and waiting tasks.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    /// `None`: the system clock.
    manual: Option<Arc<Mutex<Instant>>>,
}

impl Clock {
    /// The system's monotonic clock.
    pub(crate) fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    #[cfg(test)]
    pub(crate) fn manual() -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new(Instant::now()))),
        }
    }

    /// Moves a manual clock forward.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: std::time::Duration) {
        if let Some(now) = &self.manual {
            *now.lock().unwrap_or_else(|p| p.into_inner()) += by;
        }
    }

    /// Now.
    pub(crate) fn now(&self) -> Instant {
        match &self.manual {
            Some(now) => *now.lock().unwrap_or_else(|p| p.into_inner()),
            None => Instant::now(),
        }
    }
}
