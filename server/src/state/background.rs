//! Work the hub runs beside its services, owned and tracked.
//!
//! Every task the hub spawns (its upkeep loops, the reader of each engine's stream) is in one
//! `TaskTracker` and ends when one `CancellationToken` is cancelled, so a stopping hub can
//! tell all of it to stop and wait for it, within a deadline, the way linkerd2-proxy drains.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::Hub;
use crate::store::Committed;

/// The hub's spawned work, and the signal that stops it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Background {
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Background {
    /// Spawns `work` inside `span`; it ends when it is done or when the hub stops, whichever
    /// comes first. The handle can stop it sooner.
    pub(crate) fn spawn<F>(&self, span: tracing::Span, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn(
            async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = work => {}
                }
            }
            .instrument(span),
        )
    }

    /// Runs `work` on a blocking thread, tracked like the rest.
    pub(crate) fn spawn_blocking(&self, work: impl FnOnce() + Send + 'static) {
        self.tracker.spawn_blocking(work);
    }

    /// Resolves once the hub has begun to stop its background work.
    pub(crate) fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Tells all of the work to stop, and waits for it to end until `deadline`; says whether
    /// it all ended in time.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

impl Hub {
    /// Starts the hub's upkeep: commit reports applied as they come, a liveness sweep every
    /// heartbeat, and the retention policy at start and then every so often.
    pub(crate) fn start_upkeep(self: &Arc<Self>, mut commits: mpsc::UnboundedReceiver<Committed>) {
        let hub = self.clone();
        self.background
            .spawn(tracing::info_span!("commits"), async move {
                while let Some(report) = commits.recv().await {
                    hub.committed(report);
                }
            });
        let hub = self.clone();
        self.background
            .spawn(tracing::info_span!("liveness"), async move {
                let mut tick = tokio::time::interval(hub.settings.heartbeat);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    hub.sweep();
                }
            });
        let hub = self.clone();
        self.background
            .spawn(tracing::info_span!("retention"), async move {
                let mut tick = tokio::time::interval(hub.settings.retention.every);
                loop {
                    tick.tick().await;
                    hub.retain().await;
                }
            });
    }

    /// Deletes history past the retention policy: tasks, and engines not seen for as long.
    async fn retain(&self) {
        let retention = self.settings.retention;
        let max_age_us = retention.max_age.as_micros().min(i64::MAX as u128) as i64;
        let now = warren_proto::now_us();
        let forgotten = self.update(|state| state.forget_engines(now.saturating_sub(max_age_us)));
        if forgotten > 0 {
            tracing::info!(
                engines = forgotten,
                "retention forgot engines gone for too long"
            );
        }
        self.update(|state| state.departed.forget());
        match self
            .store
            .retain(now, max_age_us, retention.max_bytes)
            .await
        {
            Ok((0, _)) => {}
            Ok((tasks, bytes)) => tracing::info!(tasks, bytes, "retention purged old tasks"),
            Err(err) => tracing::warn!(%err, "retention could not run"),
        }
    }
}
