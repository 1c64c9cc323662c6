//! A foreground `warren exec`, `sh` or `shell`, as ssh and `docker exec` behave: this
//! command's stdin streams to the tasks as it comes (`Client::interact`), the signals it
//! receives go to the tasks' process groups (docker's sig-proxy; `signals`) and it waits for
//! their end (`follow`), and with `-t` the task runs on a terminal while this one is in raw
//! mode (`terminal`).

use anyhow::Context;
use bytes::Bytes;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use warren::proto::{ExecuteRequest, Tty};
use warren::{Client, Stdin};

use crate::cli::HubArgs;
use crate::follow::Follower;
use crate::output::Printer;
use crate::signals::Signals;
use crate::terminal::{self, RawMode};

/// Bytes of stdin sent at most per message (more if they are there at once, up to this).
const CHUNK: usize = 1 << 20;

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
    // A pipe as large as a message: a bulk writer fills it with one wake-up per CHUNK rather
    // than per 64 KiB. Not a pipe, or over /proc/sys/fs/pipe-max-size: reads are as before.
    let _ = rustix::pipe::fcntl_setpipe_size(source, CHUNK);
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
