//! Driving a program as a person at a terminal would: a real pseudo-terminal whose other side
//! is the program's stdin, stdout, stderr and controlling terminal (in a session of its own),
//! so it gets SIGWINCH when the test resizes it; and a program on pipes whose stdout the test
//! reads as it comes. Both are killed when dropped.

use rustix::pty::OpenptFlags;
use rustix::termios::{Termios, Winsize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::process::{PATIENCE, eventually};

/// A program on a terminal of its own.
#[derive(Debug)]
pub struct Terminal {
    master: OwnedFd,
    /// The program's side, kept to look at the terminal's settings.
    tty: OwnedFd,
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    /// Starts `command` on a new terminal of `rows` by `cols`.
    pub fn spawn(mut command: Command, rows: u16, cols: u16) -> Self {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).expect("openpt");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let tty = rustix::pty::ioctl_tiocgptpeer(&master, flags).expect("the terminal");
        rustix::termios::tcsetwinsize(&master, winsize(rows, cols)).expect("size");
        let side = || Stdio::from(tty.try_clone().expect("dup"));
        command.stdin(side()).stdout(side()).stderr(side());
        warren_proto::os::child::controlling_terminal(&mut command);
        let child = command.spawn().expect("start the program on the terminal");

        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = master.try_clone().expect("dup");
        rustix::io::ioctl_fionbio(&reader, true).expect("non-blocking");
        let (into, until) = (seen.clone(), stop.clone());
        std::thread::spawn(move || read_all(&reader, &into, &until));
        Self {
            master,
            tty,
            child,
            seen,
            stop,
        }
    }

    /// Types bytes at the terminal.
    pub fn type_in(&self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match rustix::io::write(&self.master, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => panic!("cannot type at the terminal: {err}"),
            }
        }
    }

    /// Resizes the terminal (the kernel sends its foreground job SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        rustix::termios::tcsetwinsize(&self.master, winsize(rows, cols)).expect("resize");
    }

    /// The terminal's settings now, as the program sees them.
    pub fn settings(&self) -> Termios {
        rustix::termios::tcgetattr(&self.tty).expect("tcgetattr")
    }

    /// How much has been shown so far, to wait for what comes after.
    pub fn mark(&self) -> usize {
        self.lock().len()
    }

    /// Everything shown so far, as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (up to [`PATIENCE`]) until `text` shows after `mark`; returns what showed since.
    pub async fn wait_for(&self, mark: usize, text: &str) -> String {
        let found = eventually(PATIENCE, || {
            let shown = String::from_utf8_lossy(&self.lock()[mark..]).into_owned();
            async move {
                if shown.contains(text) {
                    Ok(shown)
                } else {
                    Err(shown)
                }
            }
        })
        .await;
        found.unwrap_or_else(|shown| panic!("{text:?} never showed; after the mark:\n{shown:?}"))
    }

    /// Waits (up to [`PATIENCE`]) until the terminal's settings satisfy `check`.
    pub async fn wait_for_settings(&self, what: &str, check: impl Fn(&Termios) -> bool) {
        let ok = eventually(PATIENCE, || {
            let now = check(&self.settings());
            async move { if now { Ok(()) } else { Err(()) } }
        })
        .await;
        assert!(ok.is_ok(), "the terminal never became {what}");
    }

    /// Waits (up to [`PATIENCE`]) for the program to exit.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        let status = eventually(PATIENCE, || {
            let status = child.try_wait().expect("try_wait");
            async move { status.ok_or(()) }
        })
        .await;
        status.unwrap_or_else(|()| {
            panic!("the program did not exit; it showed:\n{:?}", self.screen())
        })
    }

    /// Sends the program a signal.
    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stop.store(true, Ordering::SeqCst);
        if std::thread::panicking() {
            eprintln!("----- the terminal showed -----\n{:?}", self.screen());
        }
    }
}

/// Reads what the program shows until told to stop (polling, so it can be told).
fn read_all(master: &OwnedFd, into: &Mutex<Vec<u8>>, stop: &AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut buffer = [0u8; 4096];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        if rustix::event::poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
            continue;
        }
        match rustix::io::read(master, &mut buffer) {
            Ok(0) => return,
            Ok(n) => into
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&buffer[..n]),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            // EIO: nobody has the program's side open now; it may be opened again.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A program whose stdin the test writes and whose stdout it reads line by line, as they come.
#[derive(Debug)]
pub struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Piped {
    /// Starts `command` on pipes.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let into = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut err, &mut buffer) {
                if n == 0 {
                    return;
                }
                into.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buffer[..n]);
            }
        });
        Self {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Writes to its stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(bytes).expect("write to its stdin");
        stdin.flush().expect("flush");
    }

    /// Its stdin, to write from elsewhere (a thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin is still here")
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line it writes to stdout (waits up to [`PATIENCE`]); `None` at the end.
    pub fn line(&self) -> Option<String> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line within {PATIENCE:?}; stderr:\n{}", self.stderr())
            }
        }
    }

    /// What it has written to stderr.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Stops reading its stdout: the pipe closes once what is buffered is dropped.
    pub fn close_stdout(&mut self) {
        let (_, closed) = mpsc::channel();
        self.lines = closed;
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to [`PATIENCE`]) for it to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- its stderr -----\n{}", self.stderr());
        }
    }
}
