//! Heartbeats both ways, engines declared dead when they fall silent, and tasks given up when
//! their engine does not come back.

use std::time::Instant;
use warren_proto::now_us;
use warren_proto::v1::{Heartbeat, hub_message};

use super::{Hub, State};

impl Hub {
    /// Sends heartbeats, writes off silent engines and overdue tasks, and gives freed memory
    /// back after a burst of tasks has left; once per heartbeat.
    pub(crate) fn sweep(&self) {
        let now = self.clock.now();
        let shed = self.update(|state| {
            state.sweep(now);
            state.shedding.note(state.tasks.len())
        });
        if shed {
            self.background.spawn_blocking(super::memory::give_back);
        }
    }
}

impl State {
    /// One sweep at `now`: see [`Hub::sweep`].
    fn sweep(&mut self, now: Instant) {
        let timeout = self.settings.engine_timeout;
        for engine in self.engines.iter() {
            engine.send(hub_message::Kind::Heartbeat(Heartbeat {
                time_us: now_us(),
            }));
        }
        let silent: Vec<u32> = self
            .engines
            .iter()
            .filter(|e| now.saturating_duration_since(e.last_seen) > timeout)
            .map(|e| e.id)
            .collect();
        for id in silent {
            let Some(engine) = self.engines.remove_any(id) else {
                continue;
            };
            // Dropping the engine drops its stream; stopping the reader frees the connection.
            engine.stop_reader();
            let why = format!("stopped answering for {timeout:?}");
            tracing::warn!(engine = id, %why, "engine declared dead");
            let who = engine.describe();
            self.await_engine(id, who, engine.into_active(), now, &why);
        }
        self.settle_overdue(now);
    }
}

#[cfg(test)]
mod tests {
    use warren_proto::v1::TaskState;

    use crate::state::Settings;
    use crate::state::testing::{TestEngine, assert_decided, hub, submit, sweep_after};

    #[test]
    fn heartbeats_keep_an_engine_alive_and_silence_past_the_timeout_does_not() {
        let (hub, clock) = hub(Settings::small("test"));
        let engine = TestEngine::register(&hub, "steady", 1, &[]);
        // Six seconds with a heartbeat every two: twice the timeout, and still alive.
        for _ in 0..3 {
            clock.advance(std::time::Duration::from_secs(2));
            engine.heartbeat(&hub);
            hub.sweep();
        }
        assert_eq!(hub.list_engines().len(), 1);
        // Silent for exactly the timeout: not yet.
        sweep_after(&hub, &clock, 3000);
        assert_eq!(hub.list_engines().len(), 1);
        sweep_after(&hub, &clock, 1);
        assert!(hub.list_engines().is_empty(), "declared dead");
    }

    #[test]
    fn a_dead_engines_running_task_is_retried_on_another() {
        let (hub, clock) = hub(Settings::small("test"));
        let mut first = TestEngine::register(&hub, "first", 1, &[]);
        let mut second = TestEngine::register(&hub, "second", 1, &[]);
        let id = submit(&hub, 1);
        first.run(&hub, id, 1);
        // The second engine keeps talking; the first falls silent.
        clock.advance(std::time::Duration::from_millis(3001));
        second.heartbeat(&hub);
        hub.sweep();
        assert_eq!(second.assigned(), vec![id]);
        let why = "stopped answering for 3s while the task was running; retrying elsewhere (retry 1 of 1)";
        assert_decided(&hub, id, TaskState::Queued, why);
    }
}
