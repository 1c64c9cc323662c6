//! The local terminal during `warren exec -t`: raw mode for the call (every key, Ctrl-C
//! included, goes to the remote terminal as a byte), restored on every way out: the guard's
//! drop (a return, an error, a panic that unwinds) and a panic hook (a panic on another
//! thread). Warren never exits by a signal while in raw mode: it catches the ones it
//! forwards, and SIGKILL leaves a terminal raw for any program (`reset` mends it).

use rustix::termios::{OptionalActions, Termios, Winsize};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The terminal in raw mode and the settings to restore, while raw mode is on.
static SAVED: Mutex<Option<(OwnedFd, Termios)>> = Mutex::new(None);
/// Whether raw mode is on (so messages end their lines with `\r\n`).
static RAW: AtomicBool = AtomicBool::new(false);
/// The panic hook is installed once.
static HOOKED: std::sync::Once = std::sync::Once::new();

/// Raw mode on a terminal, until dropped.
#[derive(Debug)]
pub(crate) struct RawMode {
    _private: (),
}

impl RawMode {
    /// Puts stdin's terminal in raw mode; `None` if stdin is not a terminal.
    pub(crate) fn enter() -> std::io::Result<Option<Self>> {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return Ok(None);
        }
        Self::enter_on(rustix::io::dup(stdin)?).map(Some)
    }

    /// Puts this terminal in raw mode.
    fn enter_on(tty: OwnedFd) -> std::io::Result<Self> {
        let saved = rustix::termios::tcgetattr(&tty)?;
        let mut raw = saved.clone();
        raw.make_raw();
        HOOKED.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        rustix::termios::tcsetattr(&tty, OptionalActions::Flush, &raw)?;
        *lock() = Some((tty, saved));
        RAW.store(true, Ordering::SeqCst);
        Ok(Self { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<(OwnedFd, Termios)>> {
    SAVED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts the terminal back as it was, if raw mode is on (once).
fn restore() {
    if let Some((tty, saved)) = lock().take() {
        let _ = rustix::termios::tcsetattr(&tty, OptionalActions::Now, &saved);
        RAW.store(false, Ordering::SeqCst);
    }
}

/// The end of a line warren writes itself: in raw mode the terminal adds no carriage return.
pub(crate) fn newline() -> &'static str {
    if RAW.load(Ordering::SeqCst) {
        "\r\n"
    } else {
        "\n"
    }
}

/// The size of the terminal on stdin, else on stdout; `None` if neither is one.
pub(crate) fn size() -> Option<(u16, u16)> {
    let on = |fd| rustix::termios::tcgetwinsize(fd).ok();
    let Winsize { ws_row, ws_col, .. } =
        on(rustix::stdio::stdin()).or_else(|| on(rustix::stdio::stdout()))?;
    (ws_row > 0 && ws_col > 0).then_some((ws_row, ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::pty::OpenptFlags;
    use rustix::termios::LocalModes;

    /// A new pseudo-terminal's other side, and its settings.
    fn terminal() -> (OwnedFd, OwnedFd, Termios) {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).expect("openpt");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let tty = rustix::pty::ioctl_tiocgptpeer(&master, flags).expect("the terminal");
        let settings = rustix::termios::tcgetattr(&tty).expect("tcgetattr");
        assert!(
            settings
                .local_modes
                .contains(LocalModes::ICANON | LocalModes::ECHO)
        );
        (master, tty, settings)
    }

    fn assert_same(tty: &OwnedFd, before: &Termios) {
        let after = rustix::termios::tcgetattr(tty).expect("tcgetattr");
        assert_eq!(after.local_modes, before.local_modes);
        assert_eq!(after.input_modes, before.input_modes);
        assert_eq!(after.output_modes, before.output_modes);
        assert_eq!(after.control_modes, before.control_modes);
    }

    /// Both ways out of a panic, one after the other (raw mode is one global): the guard
    /// dropped while unwinding, and the hook, for a panic on a thread that does not hold it.
    #[test]
    fn a_panic_restores_the_terminal() {
        let (_master, tty, before) = terminal();
        let guard = RawMode::enter_on(tty.try_clone().expect("dup")).expect("raw");
        let raw = rustix::termios::tcgetattr(&tty).expect("tcgetattr");
        assert!(
            !raw.local_modes
                .intersects(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG)
        );
        assert_eq!(newline(), "\r\n");
        let unwound = std::panic::catch_unwind(move || {
            let _held = guard;
            panic!("on purpose, holding the guard");
        });
        assert!(unwound.is_err());
        assert_same(&tty, &before);
        assert_eq!(newline(), "\n");

        let guard = RawMode::enter_on(tty.try_clone().expect("dup")).expect("raw");
        let elsewhere = std::thread::spawn(|| panic!("on purpose, on another thread"));
        assert!(elsewhere.join().is_err());
        assert_same(&tty, &before);
        drop(guard);
        assert_same(&tty, &before);
    }
}
