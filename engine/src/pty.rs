//! Pseudo-terminals for tasks that ask for one (`spec.tty`): the engine keeps the master side
//! and the task gets the other as its stdin, stdout, stderr and controlling terminal, in a
//! session of its own (so Ctrl-C typed at the client reaches it as a byte, and the terminal's
//! line discipline turns it into SIGINT for the foreground job, as over `ssh -t`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use tokio::net::unix::pipe;
use tokio::process::Command;

use rustix::pty::OpenptFlags;
use rustix::termios::{SpecialCodeIndex, Winsize};

/// The terminal a task gets when it asks for none in particular.
pub const DEFAULT_TERM: &str = "xterm-256color";
/// The size of a terminal whose client gave none.
const DEFAULT_SIZE: (u16, u16) = (24, 80);
/// The EOF character, if the terminal's settings can't be read.
const CTRL_D: u8 = 0x04;

/// A new pseudo-terminal: the master (the engine's side, non-blocking) and the task's side.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    task_side: OwnedFd,
}

impl Pty {
    /// Opens one of `rows` by `cols` (0 for either means 24 by 80).
    pub fn open(rows: u32, cols: u32) -> io::Result<Self> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        // By the master rather than by name: no race with whoever might open the path.
        let task_side = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
        rustix::io::ioctl_fionbio(&master, true)?;
        resize(&master, rows, cols)?;
        Ok(Self { master, task_side })
    }

    /// Makes the terminal the command's stdin, stdout, stderr and controlling terminal, with
    /// `TERM` set, in a session of its own; returns the engine's side.
    pub fn attach(self, command: &mut Command, term: &str) -> io::Result<Master> {
        let term = if term.is_empty() { DEFAULT_TERM } else { term };
        command
            .stdin(Stdio::from(self.task_side.try_clone()?))
            .stdout(Stdio::from(self.task_side.try_clone()?))
            .stderr(Stdio::from(self.task_side))
            .env("TERM", term);
        warren_proto::os::child::controlling_terminal(command.as_std_mut());
        // Two registrations of the one master, one per direction (a terminal is not a pipe,
        // but the reactor needs only a pollable, non-blocking descriptor).
        Ok(Master {
            reader: pipe::Receiver::from_owned_fd_unchecked(self.master.try_clone()?)?,
            writer: pipe::Sender::from_owned_fd_unchecked(self.master)?,
        })
    }
}

/// Sets a terminal's size (the kernel tells its foreground job with SIGWINCH).
pub fn resize(master: impl AsFd, rows: u32, cols: u32) -> io::Result<()> {
    let side = |n: u32, default: u16| match u16::try_from(n) {
        Ok(0) => default,
        Ok(n) => n,
        Err(_) => u16::MAX,
    };
    let size = Winsize {
        ws_row: side(rows, DEFAULT_SIZE.0),
        ws_col: side(cols, DEFAULT_SIZE.1),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master, size)?;
    Ok(())
}

/// The engine's side of a task's terminal: what the task writes comes out, what is written
/// here is typed in.
#[derive(Debug)]
pub struct Master {
    reader: pipe::Receiver,
    writer: pipe::Sender,
}

impl Master {
    /// Reads what the task wrote; 0 once the task's side is closed by everyone (Linux says
    /// EIO then).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.reader.readable().await?;
            match self.reader.try_read(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Ok(0);
                }
                result => return result,
            }
        }
    }

    /// Types some bytes; how many were taken.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            self.writer.writable().await?;
            match self.writer.try_write(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
    }

    /// The terminal's end-of-file character (Ctrl-D unless the task changed it).
    pub fn eof_char(&self) -> u8 {
        rustix::termios::tcgetattr(&self.writer)
            .map(|t| t.special_codes[SpecialCodeIndex::VEOF])
            .ok()
            .filter(|&c| c != 0)
            .unwrap_or(CTRL_D)
    }

    /// Sets the terminal's size.
    pub fn resize(&self, rows: u32, cols: u32) -> io::Result<()> {
        resize(&self.writer, rows, cols)
    }
}
