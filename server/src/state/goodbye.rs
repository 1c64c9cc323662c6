//! An engine that says goodbye: it is leaving for good (a signal asked it to stop, as Slurm's
//! `scancel` and time limits do, or the hub told it to), so the hub marks it gone at once and
//! settles its tasks now, instead of waiting the liveness timeout for it to come back.

use std::time::Instant;

use super::State;
use crate::validate;

impl State {
    /// The engine on this stream said goodbye with `reason`: it leaves the registry (and so
    /// `ListEngines`) now; its running tasks are lost with it, or retried elsewhere when their
    /// request allows, and tasks it had not started are placed again (see `settle`). Dropping
    /// it drops its channel, which closes its stream: the engine waits for that before it
    /// exits, so it knows the goodbye arrived.
    pub(super) fn engine_said_goodbye(
        &mut self,
        engine_id: u32,
        connection: u64,
        mut reason: String,
        now: Instant,
    ) {
        let Some(engine) = self.engines.remove(engine_id, connection) else {
            return;
        };
        validate::engine_error(&mut reason);
        let tasks = engine.active().len();
        match &engine.told_to_exit {
            Some(asked) => {
                tracing::info!(engine = engine_id, %asked, tasks, "engine stopped, as it was asked to");
            }
            None => tracing::info!(engine = engine_id, %reason, tasks, "engine said goodbye"),
        }
        let who = engine.describe();
        let why = if reason.is_empty() {
            "left".to_owned()
        } else {
            format!("left ({reason})")
        };
        self.await_engine(engine_id, who, engine.into_active(), now, &why);
        if let Some(awaiting) = self.awaiting.remove(&engine_id) {
            self.write_off(engine_id, awaiting);
        }
        self.dispatch();
    }
}

#[cfg(test)]
mod tests {
    use warren_proto::v1::TaskState;

    use crate::state::Settings;
    use crate::state::testing::{TestEngine, assert_decided, hub, submit};

    #[test]
    fn a_goodbye_settles_the_engines_tasks_at_once() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut leaving = TestEngine::register(&hub, "leaving", 2, &[]);
        let lost = submit(&hub, 0);
        let retried = submit(&hub, 1);
        let mut both = leaving.assigned();
        both.sort_unstable();
        assert_eq!(both, vec![lost, retried]);
        leaving.start(&hub, lost, 1);
        leaving.start(&hub, retried, 1);
        let mut staying = TestEngine::register(&hub, "staying", 1, &[]);

        leaving.goodbye(&hub, "SIGTERM");
        // No clock advance and no sweep: the goodbye alone settles them.
        let why = "left (SIGTERM) while the task was running";
        assert_decided(&hub, lost, TaskState::Lost, why);
        assert_decided(
            &hub,
            retried,
            TaskState::Queued,
            "retrying elsewhere (retry 1 of 1)",
        );
        assert_eq!(staying.assigned(), vec![retried]);
        let ids: Vec<u32> = hub.list_engines().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![staying.id]);
        // Its stream closes: nothing is left to settle, and nothing changes.
        leaving.leave(&hub);
        assert_decided(&hub, lost, TaskState::Lost, why);
    }

    #[test]
    fn a_goodbye_from_a_replaced_stream_changes_nothing() {
        let (hub, _clock) = hub(Settings::small("test"));
        let mut old = TestEngine::register(&hub, "same", 1, &[]);
        let id = submit(&hub, 0);
        old.run(&hub, id, 1);
        // The engine reconnects (a new stream); then a goodbye comes late on the old one.
        let back = TestEngine::register_with(&hub, "same", 1, &[], &[(id, 1)]);
        old.goodbye(&hub, "SIGTERM");
        assert_decided(&hub, id, TaskState::Running, "pid 4242");
        assert_eq!(hub.list_engines().len(), 1);
        back.finish(&hub, id);
    }
}
