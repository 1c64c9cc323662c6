//! The signals that ask the engine to stop (SIGINT, SIGTERM, SIGHUP), and the reason once one
//! has come. Nothing is spawned: whoever waits for a stop polls the signal streams itself.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Whether, and why, the engine has been asked to stop by a signal.
#[derive(Debug)]
pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    why: Option<String>,
}

impl Shutdown {
    /// Installs the handlers; from now on these signals no longer kill the engine outright.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            why: None,
        })
    }

    /// The reason to stop, if a signal has asked.
    pub fn why(&self) -> Option<String> {
        self.why.clone()
    }

    /// The reason to stop, if a signal has asked by now, without waiting.
    pub async fn now(&mut self) -> Option<String> {
        tokio::select! {
            biased;
            why = self.requested() => Some(why),
            () = std::future::ready(()) => None,
        }
    }

    /// Waits until a signal asks the engine to stop (at once if one already has), and says
    /// which. Cancel-safe: a signal is never lost by dropping the future.
    pub async fn requested(&mut self) -> String {
        if let Some(why) = &self.why {
            return why.clone();
        }
        let why = tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        };
        self.why = Some(why.to_owned());
        why.to_owned()
    }
}
