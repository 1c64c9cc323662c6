//! `warren doctor`: a line per check, saying ok or what to do.
//!
//! The checks run in order from this machine outwards: the config file and which hub it
//! names; for a hub on another machine, ssh and the tunnel; the socket's directory, the
//! socket and the connection file (or key file); then, through the hub, its version and
//! protocol, the clocks, its history and its engines, and Slurm's tools when Slurm engines are
//! registered. A check that can't run because an earlier one failed says so (`skip`) instead
//! of failing again. Nothing here may panic on a broken setup: every failure is a line.

mod hub;
mod local;
mod remote;

use serde_json::json;
use std::fmt::Write as _;

use crate::cli::{Format, HubArgs};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Fine.
    Ok,
    /// Works, but deserves a look.
    Warn,
    /// Broken: what to do is in the line.
    Fail,
    /// Not checked, because something it needs failed.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    /// What was checked.
    pub(crate) what: String,
    /// How it came out.
    pub(crate) status: Status,
    /// What was found, or what to do.
    pub(crate) detail: String,
}

/// The lines so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    lines: Vec<Line>,
}

impl Report {
    /// Adds a line.
    pub(crate) fn add(
        &mut self,
        what: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) {
        self.lines.push(Line {
            what: what.into(),
            status,
            detail: detail.into(),
        });
    }

    pub(crate) fn ok(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.add(what, Status::Ok, detail);
    }

    pub(crate) fn warn(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.add(what, Status::Warn, detail);
    }

    pub(crate) fn fail(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.add(what, Status::Fail, detail);
    }

    pub(crate) fn skip(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.add(what, Status::Skip, detail);
    }

    fn failed(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.status == Status::Fail)
            .count()
    }

    /// The report as text: `STATUS  WHAT  DETAIL`, columns aligned.
    fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|l| l.what.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for line in &self.lines {
            let _ = writeln!(
                text,
                "{:<4}  {:<width$}  {}",
                line.status.label(),
                line.what,
                line.detail
            );
        }
        text
    }
}

/// Runs every check and prints a line for each; exits 1 if any failed.
pub(crate) async fn run(hub: &HubArgs, format: Format) -> anyhow::Result<u8> {
    let mut report = Report::default();
    let found = local::config_and_hub(hub, &mut report);
    let reachable = match &found {
        None => Err("no hub could be located"),
        Some(found) => match &found.tunnel {
            Some(tunnel) if !remote::ssh_and_tunnel(tunnel, &found.socket, &mut report).await => {
                for what in ["socket directory", "socket", "connection file"] {
                    report.skip(what, "the tunnel is not up");
                }
                Err("the tunnel is not up")
            }
            _ => {
                local::files(found, &mut report);
                Ok(found)
            }
        },
    };
    let engines = hub::through_the_hub(hub, reachable, &mut report).await;
    remote::slurm(&engines, &mut report);
    let failed = report.failed();
    match format {
        Format::Json => {
            let checks: Vec<_> = report
                .lines
                .iter()
                .map(|l| json!({"check": l.what, "status": l.status.label().to_lowercase(), "detail": l.detail}))
                .collect();
            crate::format::print_json(&json!({"checks": checks, "failed": failed}))?;
        }
        Format::Quiet => {}
        Format::Text => {
            print!("{}", report.render());
            if failed > 0 {
                println!(
                    "{failed} check{} failed; each FAIL line says what to do",
                    if failed == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(u8::from(failed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_line_up_and_failures_are_counted() {
        let mut report = Report::default();
        report.ok("socket", "/run/x/hub.sock (mode 0600)");
        report.fail("connection file", "chmod 600 it");
        report.skip("engines", "no hub answers");
        assert_eq!(report.failed(), 1);
        assert_eq!(
            report.render(),
            "ok    socket           /run/x/hub.sock (mode 0600)\n\
             FAIL  connection file  chmod 600 it\n\
             skip  engines          no hub answers\n"
        );
    }
}
