//! The runners without a hub: a task runs to its end, a runner that panics reports its task
//! FAILED (in its `task` span), an exiting engine waits for its runners without polling, and
//! the end of a task killed from outside is held back until the hold passes or the engine
//! stops.

use super::*;
use std::io::Write;
use std::sync::Mutex;
use tempfile::TempDir;
use tokio::time::timeout;
use warren_proto::v1::engine_message::Kind;
use warren_proto::v1::task_spec;

/// A variable in a task's spec that makes its runner panic, in these tests only.
pub(super) const PANIC_HOOK: &str = "WARREN_TEST_RUNNER_PANICS";

/// Longer than anything here takes; only a broken runner reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

pub(super) fn script(text: &str) -> TaskSpec {
    TaskSpec {
        command: Some(task_spec::Command::Script(text.to_owned())),
        ..Default::default()
    }
}

pub(super) struct Engine {
    pub(super) tasks: Arc<Tasks>,
    pub(super) runners: Runners,
    _spill: TempDir,
}

pub(super) fn engine() -> Engine {
    // As the engine does when it starts: `cargo test` may run under `nohup` or `&`.
    crate::process::undo_inherited_ignores();
    let spill = tempfile::tempdir().expect("tempdir");
    let tasks = Arc::new(Tasks::new(1 << 20, spill.path().to_owned()));
    tasks.set_connected(true);
    let runners = Runners::new(tasks.clone(), Duration::from_millis(200));
    Engine {
        tasks,
        runners,
        _spill: spill,
    }
}

/// Takes what the tasks have to send, as a session would, until `last` says stop.
pub(super) async fn messages_until(tasks: &Tasks, last: impl Fn(&Kind) -> bool) -> Vec<Kind> {
    let mut seen = Vec::new();
    let done = timeout(PATIENCE, async {
        loop {
            let changed = tasks.changed.notified();
            let batch = tasks.next_messages(32);
            let empty = batch.is_empty();
            for message in batch {
                let kind = message.kind.expect("a message says what it is");
                let stop = last(&kind);
                seen.push(kind);
                if stop {
                    return;
                }
            }
            if empty {
                changed.await;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "nothing more came; saw {seen:#?}");
    seen
}

pub(super) fn finished(kind: &Kind) -> bool {
    matches!(kind, Kind::Finished(_))
}

pub(super) fn result_of(seen: &[Kind]) -> TaskResult {
    match seen.last() {
        Some(Kind::Finished(end)) => end.result.clone().expect("a result"),
        other => panic!("the last message is not the end: {other:?}"),
    }
}

/// The output among these messages, as text.
pub(super) fn output(seen: &[Kind]) -> String {
    let bytes: Vec<u8> = seen
        .iter()
        .filter_map(|kind| match kind {
            Kind::Output(out) => Some(out.data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn pid_of(seen: &[Kind]) -> u32 {
    seen.iter()
        .find_map(|kind| match kind {
            Kind::Started(started) => Some(started.pid),
            _ => None,
        })
        .expect("the start was reported")
}

/// Log lines written while it lives, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn a_task_runs_to_its_end_and_reports_its_start_output_and_result() {
    let engine = engine();
    engine.runners.start(3, 7, 1, script("echo hello"));
    let seen = messages_until(&engine.tasks, finished).await;
    assert_eq!(output(&seen), "hello\n");
    assert_eq!(result_of(&seen).state(), TaskState::Succeeded);
    assert!(engine.runners.wait(PATIENCE).await);
}

#[tokio::test]
async fn a_runner_that_panics_reports_its_task_failed_and_kills_its_processes() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let engine = engine();
    let mut spec = script("exec sleep 60");
    spec.env.insert(PANIC_HOOK.to_owned(), String::new());
    engine.runners.start(3, 7, 1, spec);
    let seen = messages_until(&engine.tasks, finished).await;

    let result = result_of(&seen);
    assert_eq!(result.state(), TaskState::Failed, "{result:?}");
    assert!(
        result.error.contains("runner for this task failed")
            && result.error.contains("panicked: asked to by the test hook"),
        "{}",
        result.error
    );
    assert!(result.started_us > 0, "{result:?}");
    assert!(engine.runners.wait(PATIENCE).await, "the runner is gone");
    let pid = pid_of(&seen);
    let killed = timeout(PATIENCE, async {
        while process::alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        killed.is_ok(),
        "the task's process {pid} outlived its runner"
    );
    let text = logs.text();
    assert!(
        text.lines().any(|line| line.contains("task=7")
            && line.contains("attempt=1")
            && line.contains("the task's runner failed")),
        "{text}"
    );
}

#[tokio::test]
async fn an_exiting_engine_waits_for_its_runners_to_end() {
    let engine = engine();
    engine
        .runners
        .start(3, 8, 2, script("trap '' TERM; echo up; sleep 60"));
    let up = |kind: &Kind| matches!(kind, Kind::Output(_));
    messages_until(&engine.tasks, up).await;
    assert!(
        !engine.runners.wait(Duration::from_millis(1)).await,
        "a task that ignores SIGTERM is still running"
    );
    engine.tasks.stop_all("a test");
    assert!(engine.runners.wait(PATIENCE).await);
    assert!(engine.runners.is_empty());
    let seen = messages_until(&engine.tasks, finished).await;
    let result = result_of(&seen);
    assert_eq!(result.state(), TaskState::Aborted);
    assert_eq!(result.error, "stopped: its engine is exiting (a test)");
}

#[tokio::test]
async fn the_end_of_a_task_killed_from_outside_waits_for_the_hold_or_the_engine() {
    let mut engine = engine();
    // Far longer than the test: only the engine's stop can end the hold.
    engine.runners = Runners::new(engine.tasks.clone(), Duration::from_millis(200))
        .outside_kill_hold(Duration::from_secs(3600));
    engine
        .runners
        .start(3, 9, 1, script("echo up; kill -TERM $$"));
    let seen = messages_until(&engine.tasks, |kind| matches!(kind, Kind::Output(_))).await;
    let pid = pid_of(&seen);
    let dead = timeout(PATIENCE, async {
        while crate::process::alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(dead.await.is_ok(), "the task killed itself");
    // Its output is drained and its runner holds the end back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = engine.tasks.next_messages(32);
    assert!(
        !held
            .iter()
            .any(|m| matches!(m.kind, Some(Kind::Finished(_)))),
        "{held:?}"
    );
    // The engine stopping ends the hold (after its goodbye, nobody hears the end).
    engine.tasks.stop_all("a test");
    let seen = messages_until(&engine.tasks, finished).await;
    let result = result_of(&seen);
    assert_eq!(result.state(), TaskState::Failed);
    assert_eq!(result.error, "killed by SIGTERM");
    assert!(engine.runners.wait(PATIENCE).await);
}

#[tokio::test]
async fn a_task_killed_from_outside_is_still_reported_after_the_hold() {
    let mut engine = engine();
    engine.runners = Runners::new(engine.tasks.clone(), Duration::from_millis(200))
        .outside_kill_hold(Duration::from_millis(50));
    engine.runners.start(3, 10, 1, script("kill -KILL $$"));
    let result = result_of(&messages_until(&engine.tasks, finished).await);
    assert_eq!(result.state(), TaskState::Failed);
    assert_eq!(result.error, "killed by SIGKILL");
}

#[test]
fn a_pipe_is_grown_once_a_read_finds_its_writer_ahead_and_not_before() {
    use std::os::fd::AsFd;
    let (reader, _writer) = rustix::pipe::pipe().expect("pipe");
    let size = || rustix::pipe::fcntl_getpipe_size(&reader).expect("F_GETPIPE_SZ");
    let before = size();
    let mut grown = false;
    supervise::grow_if_writer_ahead(reader.as_fd(), 100, &mut grown);
    assert_eq!(
        (size(), grown),
        (before, false),
        "a short read leaves the pipe as it is"
    );
    supervise::grow_if_writer_ahead(reader.as_fd(), 32 << 10, &mut grown);
    assert!(grown, "half a pipe in one read");
    // Unless the kernel caps an unprivileged user's pipes below a MiB (pipe-max-size).
    let cap = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(1 << 20);
    if cap >= 1 << 20 || rustix::process::geteuid().is_root() {
        assert_eq!(size(), 1 << 20, "a full read grows it to a chunk");
    }
}
