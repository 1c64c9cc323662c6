//! The hub's view of its own health, for `warren doctor`: its engines' silence and its
//! history's state.

use warren_proto::v1::{DiagnoseReply, EngineHealth};

use super::Hub;

impl Hub {
    /// How each engine and the history are doing.
    pub(crate) async fn diagnose(&self) -> DiagnoseReply {
        let now = self.clock.now();
        let engines = self.view(|state| {
            state
                .engines
                .iter()
                .map(|engine| EngineHealth {
                    id: engine.id,
                    hostname: engine.hello.hostname.clone(),
                    pid: engine.hello.pid,
                    silent_ms: now.saturating_duration_since(engine.last_seen).as_millis() as u64,
                    labels: engine.hello.labels.clone(),
                })
                .collect()
        });
        let settings = self.settings();
        DiagnoseReply {
            database: Some(self.store.health().await),
            engines,
            heartbeat_ms: settings.heartbeat.as_millis() as u32,
            engine_timeout_ms: settings.engine_timeout.as_millis() as u32,
            hub_time_us: warren_proto::now_us(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::state::Settings;
    use crate::state::testing::{TestEngine, hub};

    #[tokio::test]
    async fn an_engines_silence_is_measured_on_the_hubs_clock() {
        let (hub, clock) = hub(Settings::small("test"));
        let _engine = TestEngine::register(&hub, "quiet", 1, &[("slurm_job", "7")]);
        clock.advance(Duration::from_millis(1500));
        let reply = hub.diagnose().await;
        assert_eq!(reply.engines.len(), 1);
        assert_eq!(reply.engines[0].silent_ms, 1500);
        assert_eq!(
            reply.engines[0].labels.get("slurm_job").map(String::as_str),
            Some("7")
        );
        assert_eq!(reply.engine_timeout_ms, 3000);
        assert_eq!(reply.database.map(|d| d.location), Some(":memory:".into()));
    }
}
