//! The signals a foreground run catches, and what becomes of them: they go to the tasks'
//! process groups (docker's sig-proxy), three Ctrl-C within 2 s detach this command and leave
//! the tasks running, and a closed stdout (`| head`) ends the tasks by SIGPIPE. The follower
//! (`follow`) waits for them beside the tasks' events.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;
use warren::Client;

use crate::output::Printer;

/// Ctrl-C this many times within [`DETACH_WINDOW`] to detach.
const DETACH_PRESSES: usize = 3;
const DETACH_WINDOW: Duration = Duration::from_secs(2);
/// What `warren` exits with when it detached: as a command interrupted by Ctrl-C.
pub(crate) const EXIT_DETACHED: u8 = 130;
/// What `warren` exits with when its stdout closed: as a process killed by SIGPIPE.
pub(crate) const EXIT_SIGPIPE: u8 = 128 + 13;
/// How long the calls that end the tasks may take once stdout has gone.
const SIGPIPE_WAIT: Duration = Duration::from_secs(5);

/// What a signal asks of a foreground run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Send this signal to the tasks.
    Forward(i32),
    /// Leave the tasks running and exit.
    Detach,
}

/// The signals a foreground run catches and forwards.
#[derive(Debug)]
pub(crate) struct Signals {
    caught: Vec<(i32, Signal)>,
    /// When the last Ctrl-C came, the oldest first.
    presses: VecDeque<Instant>,
    /// Whether the first Ctrl-C has been explained.
    explained: bool,
}

impl Signals {
    /// Catches SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2.
    pub(crate) fn install() -> std::io::Result<Self> {
        use rustix::process::Signal as S;
        let mut caught = Vec::new();
        for number in [S::INT, S::TERM, S::HUP, S::QUIT, S::USR1, S::USR2] {
            let number = number.as_raw();
            caught.push((number, signal(SignalKind::from_raw(number))?));
        }
        Ok(Self {
            caught,
            presses: VecDeque::new(),
            explained: false,
        })
    }

    /// The next signal, and what it asks.
    pub(crate) async fn next(&mut self) -> Act {
        let (number, _) = futures_util::future::select_all(
            self.caught
                .iter_mut()
                .map(|(number, signal)| Box::pin(async move { (*number, signal.recv().await) })),
        )
        .await
        .0;
        if number != rustix::process::Signal::INT.as_raw() {
            return Act::Forward(number);
        }
        let now = Instant::now();
        self.presses.push_back(now);
        while self
            .presses
            .front()
            .is_some_and(|&at| now.duration_since(at) > DETACH_WINDOW)
        {
            self.presses.pop_front();
        }
        if self.presses.len() >= DETACH_PRESSES {
            Act::Detach
        } else {
            Act::Forward(number)
        }
    }

    /// Whether this is the first Ctrl-C (to explain what more would do), once.
    pub(crate) fn first_press(&mut self, signal: i32) -> bool {
        let first = signal == rustix::process::Signal::INT.as_raw() && !self.explained;
        self.explained |= first;
        first
    }
}

/// Sends `signal` to the tasks' process groups; tasks not started yet are aborted (the
/// signal would have ended them). Says what it did.
pub(crate) async fn forward(
    client: &Client,
    tasks: &[u64],
    signal: i32,
    printer: &mut Printer,
    explain: bool,
) {
    let name = warren_proto::os::signals::describe(signal);
    if tasks.is_empty() {
        return;
    }
    match client.interrupt(tasks, signal).await {
        Ok(reply) => {
            if !reply.not_running.is_empty() {
                let _ = client.abort(&reply.not_running).await;
            }
            let list = |ids: &[u64]| {
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut said = Vec::new();
            if !reply.signalled.is_empty() {
                said.push(format!("sent {name} to task {}", list(&reply.signalled)));
            }
            if !reply.not_running.is_empty() {
                said.push(format!(
                    "aborted task {} (not started yet)",
                    list(&reply.not_running)
                ));
            }
            if explain {
                said.push("Ctrl-C twice more within 2 s detaches (the tasks go on)".into());
            }
            if !said.is_empty() {
                printer.note(&said.join("; "));
            }
        }
        Err(err) => printer.note(&format!("could not send {name} to the tasks: {err}")),
    }
}

/// Stdout has gone: ends the tasks as a closed pipe would, with SIGPIPE to their groups (a
/// task not started yet is aborted), without waiting long.
pub(crate) async fn stdout_closed(client: &Client, tasks: &[u64]) {
    if tasks.is_empty() {
        return;
    }
    let pipe = rustix::process::Signal::PIPE.as_raw();
    let _ = tokio::time::timeout(SIGPIPE_WAIT, async {
        if let Ok(reply) = client.interrupt(tasks, pipe).await
            && !reply.not_running.is_empty()
        {
            let _ = client.abort(&reply.not_running).await;
        }
    })
    .await;
}
