//! `warren cp`: copy files to and from engines, like `scp` and `docker cp`, through the hub.
//!
//! A remote path is `ID:PATH` (an engine id, then a path on it; `ID:` alone is the engine's
//! working directory) or, as a destination, `--all:PATH` (every engine). Anything else is a
//! local path: write `./1:x` for a local file whose name looks remote.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};
use warren::proto::{CopyResult, CopySummary};
use warren::{Client, CopyOptions, CopyTo};

use crate::cli::CpArgs;
use crate::usage_error;

/// What `warren cp` exits with when a copy failed (as scp does).
const EXIT_COPY_FAILED: u8 = 1;

/// One end of a copy, as written on the command line.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Local(PathBuf),
    Engine(u32, String),
    All(String),
}

impl Place {
    fn parse(arg: &str) -> anyhow::Result<Self> {
        let remote = |path: &str| {
            if path.is_empty() {
                ".".to_owned()
            } else {
                path.to_owned()
            }
        };
        if let Some(path) = arg.strip_prefix("--all:") {
            return Ok(Self::All(remote(path)));
        }
        match arg.split_once(':') {
            Some((id, path)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                let id = id.parse().map_err(|_| {
                    usage_error(format!(
                        "{id} is not an engine id; `warren engines` lists them"
                    ))
                })?;
                Ok(Self::Engine(id, remote(path)))
            }
            _ => Ok(Self::Local(PathBuf::from(arg))),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Upload {
        sources: Vec<PathBuf>,
        to: CopyTo,
        path: String,
    },
    Download {
        engine: u32,
        path: String,
        to: PathBuf,
    },
}

impl Plan {
    /// The copy the places describe, or a usage error.
    fn new(args: &[String]) -> anyhow::Result<Self> {
        let places = args
            .iter()
            .map(|p| Place::parse(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let Some((dest, sources)) = places.split_last() else {
            return Err(usage_error("give the sources, then the destination"));
        };
        let (to, path) = match dest {
            Place::Local(to) => {
                return match sources {
                    [Place::Engine(engine, path)] => Ok(Self::Download {
                        engine: *engine,
                        path: path.clone(),
                        to: to.clone(),
                    }),
                    _ => Err(sources_error(sources)),
                };
            }
            Place::Engine(id, path) => (CopyTo::Engine(*id), path.clone()),
            Place::All(path) => (CopyTo::All, path.clone()),
        };
        let sources = sources
            .iter()
            .map(|place| match place {
                Place::Local(path) => Ok(path.clone()),
                _ => Err(usage_error(
                    "copy between engines through here: copy to a local path first, then from it",
                )),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self::Upload { sources, to, path })
    }
}

/// Copies, reporting each engine's outcome; exits 1 if any part failed.
/// Runs `warren cp`; `quiet` (the global `-q`) shows no progress bar.
pub(crate) async fn run(client: &Client, args: &CpArgs, quiet: bool) -> anyhow::Result<u8> {
    let plan = Plan::new(&args.paths)?;
    let options = CopyOptions::new().recursive(args.recursive);
    let bar = progress_bar(quiet);
    let options = match &bar {
        Some(bar) => {
            let bar = bar.clone();
            options.progress(move |done, total| {
                bar.set_length(total.max(done));
                bar.set_position(done);
            })
        }
        None => options,
    };
    let outcome = tokio::select! {
        outcome = copy(client, &plan, &options) => outcome,
        signal = interrupted() => {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            eprintln!(
                "warren: interrupted; the copy is given up, and unfinished files are not left under their real names"
            );
            return Ok(128 + signal?);
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let results = match outcome {
        Ok(results) => results,
        Err(err) => return failed(err),
    };
    let mut code = 0;
    for result in results {
        if result.code != 0 {
            eprintln!("warren: engine {}: {}", result.engine_id, result.message);
            code = EXIT_COPY_FAILED;
        } else if bar.is_some() {
            let summary = result.summary.unwrap_or_default();
            eprintln!("engine {}: {}", result.engine_id, describe(&summary));
        }
    }
    Ok(code)
}

/// Uploads or downloads, as planned.
async fn copy(
    client: &Client,
    plan: &Plan,
    options: &CopyOptions,
) -> Result<Vec<CopyResult>, warren::Error> {
    match plan {
        Plan::Upload { sources, to, path } => client.upload(sources, *to, path, options).await,
        Plan::Download { engine, path, to } => {
            let summary = client.download(*engine, path, to, options).await?;
            Ok(vec![CopyResult {
                engine_id: *engine,
                summary: Some(summary),
                ..CopyResult::default()
            }])
        }
    }
}

fn sources_error(sources: &[Place]) -> anyhow::Error {
    if sources.iter().any(|s| matches!(s, Place::All(_))) {
        usage_error(
            "--all:PATH is a destination only; download from one engine at a time (ID:PATH)",
        )
    } else if sources.iter().all(|s| matches!(s, Place::Local(_))) {
        usage_error(
            "both ends are local; name an engine's path as ID:PATH (e.g. 1:/tmp), or use cp",
        )
    } else {
        usage_error("download one ID:PATH at a time")
    }
}

/// Reports a failed copy: 1 for what the copy met (a path, a permission, a full disk, an
/// engine that left), 255 (through the error) when the hub could not be reached.
fn failed(err: warren::Error) -> anyhow::Result<u8> {
    use tonic::Code;
    let (message, code) = match &err {
        warren::Error::Copy(copy) => (copy.message().to_owned(), EXIT_COPY_FAILED),
        warren::Error::Status(status)
            if std::error::Error::source(status).is_none()
                && matches!(
                    status.code(),
                    Code::NotFound
                        | Code::PermissionDenied
                        | Code::FailedPrecondition
                        | Code::ResourceExhausted
                        | Code::DataLoss
                        | Code::InvalidArgument
                        | Code::Unavailable
                        | Code::Internal
                ) =>
        {
            (status.message().to_owned(), EXIT_COPY_FAILED)
        }
        _ => return Err(err.into()),
    };
    eprintln!("warren: {message}");
    Ok(code)
}

/// A bar on stderr if it is a terminal (and not `--quiet`).
fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Resolves with the signal's number when SIGINT, SIGTERM or SIGHUP arrives.
async fn interrupted() -> anyhow::Result<u8> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
        _ = hup.recv() => 1,
    })
}

fn describe(summary: &CopySummary) -> String {
    let mut parts = vec![format!("{} files", summary.files)];
    if summary.directories > 0 {
        parts.push(format!("{} directories", summary.directories));
    }
    if summary.symlinks > 0 {
        parts.push(format!("{} symlinks", summary.symlinks));
    }
    let mut text = format!("{}, {} bytes", parts.join(", "), summary.bytes);
    if summary.skipped > 0 {
        text.push_str(&format!(" ({} special files skipped)", summary.skipped));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_places_say_which_way_to_copy() {
        let plan =
            |args: &[&str]| Plan::new(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            plan(&["a", "b", "2:/x"]).expect("upload"),
            Plan::Upload {
                sources: vec!["a".into(), "b".into()],
                to: CopyTo::Engine(2),
                path: "/x".into()
            }
        );
        assert_eq!(
            plan(&["a", "--all:/x"]).expect("upload to all"),
            Plan::Upload {
                sources: vec!["a".into()],
                to: CopyTo::All,
                path: "/x".into()
            }
        );
        assert_eq!(
            plan(&["2:/x", "."]).expect("download"),
            Plan::Download {
                engine: 2,
                path: "/x".into(),
                to: ".".into()
            }
        );
        for refused in [
            &["a", "b"][..],
            &["1:/a", "2:/b"],
            &["1:/a", "2:/b", "c"],
            &["--all:/a", "c"],
            &["a", "1:/b", "2:/c"],
        ] {
            assert!(plan(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn places_are_remote_only_when_they_name_an_engine_or_all() {
        let parse = |s: &str| Place::parse(s).expect(s);
        assert_eq!(parse("3:/tmp/x"), Place::Engine(3, "/tmp/x".into()));
        assert_eq!(parse("3:"), Place::Engine(3, ".".into()));
        assert_eq!(parse("--all:/opt"), Place::All("/opt".into()));
        assert_eq!(parse("./3:x"), Place::Local("./3:x".into()));
        assert_eq!(parse("host:x"), Place::Local("host:x".into()));
        assert_eq!(parse("/a/b"), Place::Local("/a/b".into()));
        assert!(Place::parse("99999999999:/x").is_err());
    }
}
