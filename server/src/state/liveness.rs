//! Heartbeats both ways, engines declared dead when they fall silent, and tasks given up when
//! their engine does not come back.

use std::sync::Arc;
use std::time::Instant;
use warren_proto::now_us;
use warren_proto::v1::{Heartbeat, hub_message};

use crate::state::Hub;

impl Hub {
    /// Sends heartbeats, writes off silent engines and overdue tasks; once per heartbeat.
    pub fn sweep(&self) {
        let timeout = self.settings().engine_timeout;
        let mut state = self.lock();
        let now = Instant::now();
        for engine in state.engines.iter() {
            engine.send(hub_message::Kind::Heartbeat(Heartbeat {
                time_us: now_us(),
            }));
        }
        let silent: Vec<u32> = state
            .engines
            .iter()
            .filter(|e| now.duration_since(e.last_seen) > timeout)
            .map(|e| e.id)
            .collect();
        for id in silent {
            let Some(engine) = state.engines.remove_any(id) else {
                continue;
            };
            // Dropping the engine drops its stream; stopping the reader frees the connection.
            if let Some(reader) = &engine.reader {
                reader.abort();
            }
            let why = format!("stopped answering for {timeout:?}");
            tracing::warn!(engine = id, %why, "engine declared dead");
            let who = engine.describe();
            state.await_engine(id, who, engine.active, now, &why);
        }
        state.settle_overdue(now);
    }
}

/// Sweeps every heartbeat interval until the hub stops.
pub(crate) async fn run(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(hub.settings().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        hub.sweep();
    }
}
