//! A foreground `warren exec`, `sh` or `shell`, as ssh and `docker exec` behave: this
//! command's stdin streams to the tasks as it comes (`Client::interact`), the signals it
//! receives go to the tasks' process groups (docker's sig-proxy) and it waits for their end,
//! three Ctrl-C within 2 s detach it, a closed stdout (`| head`) ends the tasks by SIGPIPE, and
//! with `-t` the task runs on a terminal while this one is in raw mode (`terminal`).

use anyhow::Context;
use bytes::Bytes;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;
use warren::proto::{ExecuteRequest, Tty};
use warren::{Client, Stdin};

use crate::cli::HubArgs;
use crate::follow::Follower;
use crate::output::Printer;
use crate::terminal::{self, RawMode};

/// Bytes of stdin sent at most per message (more if they are there at once, up to this).
const CHUNK: usize = 256 << 10;
/// Ctrl-C this many times within [`DETACH_WINDOW`] to detach.
const DETACH_PRESSES: usize = 3;
const DETACH_WINDOW: Duration = Duration::from_secs(2);
/// What `warren` exits with when it detached: as a command interrupted by Ctrl-C.
pub(crate) const EXIT_DETACHED: u8 = 130;
/// What `warren` exits with when its stdout closed: as a process killed by SIGPIPE.
pub(crate) const EXIT_SIGPIPE: u8 = 128 + 13;
/// How long the calls that end the tasks may take once stdout has gone.
const SIGPIPE_WAIT: Duration = Duration::from_secs(5);

/// Where the tasks' stdin comes from.
#[derive(Debug)]
pub(crate) enum Input {
    /// Nowhere: it is empty (`-n`).
    None,
    /// This command's stdin.
    Local,
    /// A file, streamed (`--stdin FILE`).
    File(PathBuf),
}

/// How a foreground run goes.
#[derive(Debug)]
pub(crate) struct Options {
    /// The tasks' stdin.
    pub(crate) input: Input,
    /// A terminal for the task (`-t`).
    pub(crate) tty: bool,
    /// How long to wait for a hub that went away.
    pub(crate) reconnect: Duration,
}

/// Runs a request in the foreground and follows its tasks to their end; their exit status.
pub(crate) async fn run(
    hub: &HubArgs,
    client: &Client,
    mut request: ExecuteRequest,
    printer: Printer,
    options: Options,
) -> anyhow::Result<u8> {
    if options.tty
        && let Some(spec) = request.spec.as_mut()
    {
        let (rows, cols) = terminal::size().unwrap_or((0, 0));
        spec.tty = Some(Tty {
            rows: rows.into(),
            cols: cols.into(),
            term: std::env::var("TERM").unwrap_or_default(),
        });
    }
    // Caught from before the call, so a Ctrl-C at once is forwarded rather than fatal.
    let signals = Signals::install().context("cannot catch signals")?;
    let (stdin, events) = match options.input {
        Input::None => (None, client.run(request).await?),
        input => {
            let (stdin, events) = client.interact(request).await?;
            let source = open(&input)?;
            (Some((stdin, source)), events)
        }
    };
    // Only once the hub has taken the call, so that an error before prints as usual.
    let raw = if options.tty {
        RawMode::enter().context("cannot put the terminal in raw mode")?
    } else {
        None
    };
    if let Some((stdin, source)) = stdin {
        if options.tty {
            watch_resizes(stdin.clone())?;
        }
        std::thread::Builder::new()
            .name("warren-stdin".into())
            .spawn(move || feed(&source, &stdin))
            .context("cannot start reading stdin")?;
    }
    let follower = Follower::new(hub, printer, options.reconnect).with_signals(signals);
    let code = follower.run(client.clone(), events).await;
    drop(raw);
    code
}

/// The file the tasks' stdin comes from (stdin itself, duplicated).
fn open(input: &Input) -> anyhow::Result<OwnedFd> {
    match input {
        Input::File(path) => Ok(std::fs::File::open(path)
            .with_context(|| format!("cannot open --stdin {}", path.display()))?
            .into()),
        _ => Ok(rustix::io::dup(rustix::stdio::stdin()).context("cannot use stdin")?),
    }
}

/// On a thread of its own (reads block): sends `source` to the tasks as it comes, each read
/// at once (with whatever else is there already, up to [`CHUNK`]), then its end.
fn feed(source: &OwnedFd, stdin: &Stdin) {
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut ended = !read_more(source, &mut chunk);
        while !ended && chunk.len() < CHUNK && readable_now(source) {
            ended = !read_more(source, &mut chunk);
        }
        if !chunk.is_empty() && stdin.blocking_send(Bytes::from(chunk)).is_err() {
            // The call has ended: nobody takes more.
            return;
        }
        if ended {
            let _ = stdin.blocking_end();
            return;
        }
    }
}

/// Reads once into `chunk`'s spare room; false at the end (or an error, said).
fn read_more(source: &OwnedFd, chunk: &mut Vec<u8>) -> bool {
    loop {
        match rustix::io::read(source, rustix::buffer::spare_capacity(chunk)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => {}
            // A terminal that hung up.
            Err(rustix::io::Errno::IO) => return false,
            Err(err) => {
                eprint!("warren: cannot read stdin: {err}{}", terminal::newline());
                return false;
            }
        }
    }
}

/// Whether a read would not block now.
fn readable_now(source: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(source, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).is_ok_and(|ready| ready > 0)
}

/// Sends the terminal's size each time it changes (SIGWINCH).
fn watch_resizes(stdin: Stdin) -> anyhow::Result<()> {
    let mut changes = signal(SignalKind::window_change()).context("cannot catch SIGWINCH")?;
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            if let Some((rows, cols)) = terminal::size()
                && stdin.resize(rows, cols).await.is_err()
            {
                return;
            }
        }
    });
    Ok(())
}

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
    fn install() -> std::io::Result<Self> {
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
