//! The progress bar of `warren map` on a terminal (stderr): tasks done (of all, when the
//! number of arguments is known beforehand), running and failed, the rate and the time left.
//! Off a terminal it draws nothing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// How often the bar is redrawn when nothing happens (the rate and time left move on).
const TICK: Duration = Duration::from_millis(200);

/// Counts of a map's tasks, and the bar that shows them.
pub(crate) struct Progress {
    bar: ProgressBar,
    running: u64,
    failed: u64,
}

impl Progress {
    /// A bar for `total` tasks (unknown: `None`), on stderr if it is a terminal.
    pub(crate) fn new(total: Option<u64>) -> Self {
        let target = ProgressDrawTarget::stderr();
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), target),
                "{wide_bar} {pos}/{len} done, {msg}, {per_sec}, ETA {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, target),
                "{spinner} {pos} done, {msg}, {per_sec}, {elapsed}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let progress = Self {
            bar,
            running: 0,
            failed: 0,
        };
        progress.show();
        if !progress.bar.is_hidden() {
            progress.bar.enable_steady_tick(TICK);
        }
        progress
    }

    /// More tasks than the arguments promised (one argument made several tasks).
    pub(crate) fn add(&self, tasks: u64) {
        if self.bar.length().is_some() {
            self.bar.inc_length(tasks);
        }
    }

    /// A task started running.
    pub(crate) fn started(&mut self) {
        self.running += 1;
        self.show();
    }

    /// A task ended; `ran` if it had been counted as running.
    pub(crate) fn ended(&mut self, ran: bool, succeeded: bool) {
        if ran {
            self.running = self.running.saturating_sub(1);
        }
        if !succeeded {
            self.failed += 1;
        }
        self.bar.inc(1);
        self.show();
    }

    /// Runs `write` with the bar out of the way, so output does not mix with it.
    pub(crate) fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        self.bar.suspend(write)
    }

    /// Takes the bar off the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn show(&self) {
        self.bar
            .set_message(format!("{} running, {} failed", self.running, self.failed));
    }
}
