//! What clients ask of work already submitted: abort, interrupt, stop engines, wind down.

use std::pin::pin;
use warren_proto::v1::{
    AbortReply, CancelTask, InterruptReply, ShutdownEngine, SignalTask, TaskState, hub_message,
};

use super::registry::Engine;
use super::task::Task;
use super::{Hub, State};
use crate::error::HubError;
use crate::model::Submitter;
use crate::validate;

/// Task ids sorted by where they stand.
#[derive(Default)]
struct Sorted {
    /// In memory and not ending: the action applies to them.
    live: Vec<u64>,
    /// Ended, or ending.
    already_final: Vec<u64>,
    /// Not in memory: ended long ago, or never were.
    elsewhere: Vec<u64>,
}

impl State {
    /// A live task and the engine it is active on, if it is on one.
    fn on_engine(&self, id: u64) -> Option<(&Task, &Engine)> {
        let task = self.tasks.get(&id)?;
        let engine = self.engines.get(task.row.engine_id)?;
        engine.runs(id).then_some((task, engine))
    }

    /// Sorts `ids` by where the tasks stand.
    fn sort(&self, ids: &[u64]) -> Sorted {
        let mut sorted = Sorted::default();
        for &id in ids {
            match self.tasks.get(&id) {
                None => sorted.elsewhere.push(id),
                Some(task) if task.is_ending() => sorted.already_final.push(id),
                Some(_) => sorted.live.push(id),
            }
        }
        sorted
    }
}

impl Hub {
    /// Of tasks not in memory, adds those the history has to `already_final` and the rest to
    /// `not_found`.
    async fn look_up_gone(
        &self,
        ids: Vec<u64>,
        already_final: &mut Vec<u64>,
        not_found: &mut Vec<u64>,
    ) -> Result<(), HubError> {
        for id in ids {
            match self.get_task(id).await {
                Ok(_) => already_final.push(id),
                Err(HubError::UnknownTask { .. }) => not_found.push(id),
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Aborts tasks: queued ones end at once, running ones are terminated by their engine.
    pub(crate) async fn abort(&self, ids: &[u64], by: Submitter) -> Result<AbortReply, HubError> {
        if ids.is_empty() {
            return Err(HubError::invalid("no task ids given"));
        }
        let mut reply = AbortReply::default();
        let elsewhere = self.update(|state| {
            let sorted = state.sort(ids);
            reply.already_final = sorted.already_final;
            for id in sorted.live {
                if let Some((task, engine)) = state.on_engine(id) {
                    engine.send(hub_message::Kind::Cancel(CancelTask {
                        task_id: id,
                        discard: false,
                        attempt: task.row.attempt,
                    }));
                    reply.terminating.push(id);
                } else {
                    state.dequeue(id);
                    if let Some(task) = state.tasks.get_mut(&id) {
                        let why = format!("aborted by uid {} before it started", by.uid);
                        let end = task.end(TaskState::Aborted, why);
                        state.write(end);
                    }
                    reply.aborted.push(id);
                }
            }
            sorted.elsewhere
        });
        self.look_up_gone(elsewhere, &mut reply.already_final, &mut reply.not_found)
            .await?;
        // Aborted means aborted: answer once the ends are recorded.
        for &id in &reply.aborted {
            self.wait_until_ended(id).await;
        }
        Ok(reply)
    }

    /// Waits (a few seconds at most) until a task's end is committed and shown.
    pub(super) async fn wait_until_ended(&self, id: u64) {
        let deadline = tokio::time::Instant::now() + self.settings.abort_wait;
        loop {
            let notified = self.view(|state| match state.tasks.get(&id) {
                Some(task) if !task.state().is_final() => {
                    Some(task.notify.clone().notified_owned())
                }
                _ => None,
            });
            let Some(notified) = notified else {
                return;
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Sends a signal to running tasks' process groups.
    pub(crate) async fn interrupt(
        &self,
        ids: &[u64],
        signal: i32,
    ) -> Result<InterruptReply, HubError> {
        let signal = validate::signal(signal)?;
        if ids.is_empty() {
            return Err(HubError::invalid("no task ids given"));
        }
        let mut reply = InterruptReply::default();
        let elsewhere = self.view(|state| {
            let sorted = state.sort(ids);
            reply.already_final = sorted.already_final;
            for id in sorted.live {
                let running = state.on_engine(id);
                match running.filter(|(task, _)| task.state() == TaskState::Running) {
                    Some((_, engine)) => {
                        engine.send(hub_message::Kind::Signal(SignalTask {
                            task_id: id,
                            signal,
                        }));
                        reply.signalled.push(id);
                    }
                    None => reply.not_running.push(id),
                }
            }
            sorted.elsewhere
        });
        self.look_up_gone(elsewhere, &mut reply.already_final, &mut reply.not_found)
            .await?;
        Ok(reply)
    }

    /// Tells engines to exit (all of them if `ids` is empty).
    pub(crate) fn shutdown_engines(&self, ids: &[u32]) -> Result<Vec<u32>, HubError> {
        self.update(|state| {
            if let Some(&unknown) = ids.iter().find(|&&id| state.engines.get(id).is_none()) {
                return Err(HubError::UnknownEngine(unknown));
            }
            let ids = if ids.is_empty() {
                state.engines.ids()
            } else {
                ids.to_vec()
            };
            state.tell_to_exit(&ids, "asked to stop by Control.ShutdownEngines");
            Ok(ids)
        })
    }

    /// Stops taking work; with `engines_exit`, tells every engine to stop its tasks and exit
    /// and waits (for the shutdown grace at most) until none runs a task and every end is
    /// committed and shown, so followers see them. Returns once everything decided so far is
    /// committed.
    pub(crate) async fn wind_down(&self, engines_exit: bool) {
        self.update(|state| {
            state.accepting = false;
            if engines_exit {
                let ids = state.engines.ids();
                state.tell_to_exit(
                    &ids,
                    "the hub is shutting down and asked its engines to exit",
                );
            }
        });
        if engines_exit {
            let deadline = tokio::time::Instant::now() + self.settings.shutdown_grace;
            loop {
                // Registered before looking, so a task ending after the look still wakes us.
                let mut quieter = pin!(self.quieter.notified());
                quieter.as_mut().enable();
                if self.view(State::is_quiet) {
                    break;
                }
                if tokio::time::timeout_at(deadline, quieter).await.is_err() {
                    tracing::warn!(
                        grace = ?self.settings.shutdown_grace,
                        "engines still ran tasks at the end of the shutdown grace"
                    );
                    break;
                }
            }
        }
        // Everything decided so far is committed once this read has run.
        let _ = self.store.settled().await;
    }
}

impl State {
    /// Whether no engine runs a task and every end decided is committed and shown.
    fn is_quiet(&self) -> bool {
        !self.engines.busy() && self.tasks.values().all(|task| !task.end_pending())
    }

    /// Tells these engines to exit, saying why: their leaving is then expected, not a loss.
    fn tell_to_exit(&mut self, ids: &[u32], reason: &str) {
        for &id in ids {
            if let Some(engine) = self.engines.get_mut(id) {
                engine.told_to_exit = Some(reason.into());
                engine.send(hub_message::Kind::Shutdown(ShutdownEngine {
                    exit: true,
                    reason: reason.into(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;
    use warren_proto::v1::{TaskState, hub_message};

    use crate::state::Settings;
    use crate::state::testing::{TestEngine, decided, hub, submit};

    /// The grace is an hour: a wind-down that waited for it instead of for the engines and
    /// the commits would not end within the minute this test gives it.
    #[tokio::test]
    async fn winding_down_waits_for_the_ends_to_be_shown_not_for_the_grace() {
        let mut settings = Settings::small("test");
        settings.shutdown_grace = Duration::from_secs(3600);
        let (hub, _clock) = hub(settings);
        let mut engine = TestEngine::register(&hub, "busy", 1, &[]);
        let id = submit(&hub, 0);
        engine.run(&hub, id, 1);

        let winding = tokio::spawn({
            let hub = hub.clone();
            async move { hub.wind_down(true).await }
        });
        let told = loop {
            match engine.inbox.recv().await.and_then(|message| message.kind) {
                Some(hub_message::Kind::Shutdown(shutdown)) => break shutdown,
                Some(_) => continue,
                None => panic!("the engine's stream ended"),
            }
        };
        assert!(told.exit, "the engine is told to exit");
        tokio::task::yield_now().await;
        assert!(
            !winding.is_finished(),
            "it waits while the engine runs a task"
        );

        engine.finish(&hub, id);
        tokio::time::timeout(Duration::from_secs(60), winding)
            .await
            .expect("the wind-down ends with the task, not with the grace")
            .expect("wind-down");
        // The end is shown: it left memory once committed, with nobody following it.
        assert_eq!(decided(&hub, id), None);
        assert_eq!(
            hub.get_task(id).await.expect("in the history").state(),
            TaskState::Succeeded
        );
    }
}
