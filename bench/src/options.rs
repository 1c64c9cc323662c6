//! The bench's flags beyond the core ones (smoke runs, charts, the IPython parallel
//! comparison, the load clients' internal mode) and how big each run is.

use std::path::PathBuf;

/// Flags flattened into the bench's command line.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Extra {
    /// Tiny sizes, every scenario once, in seconds: checks that everything runs and writes
    /// its JSON (the figures mean nothing; the smoke test runs this)
    #[arg(long, conflicts_with = "quick")]
    pub(crate) smoke: bool,
    /// Draw how cost grows (scenario 10) as SVG charts into this directory
    #[arg(long, value_name = "DIR")]
    pub(crate) charts: Option<PathBuf>,
    /// Print warren side by side with IPython parallel's results, the JSON written by
    /// tests/ipyparallel/run.sh
    #[arg(long, value_name = "FILE")]
    pub(crate) compare: Option<PathBuf>,
    /// Write the table (with --compare's rows) as Markdown to this file, as README's
    /// "Performance" section shows it
    #[arg(long, value_name = "FILE")]
    pub(crate) markdown: Option<PathBuf>,
    /// Run nothing: draw --charts, print --compare and write --markdown from this earlier
    /// run's JSON
    #[arg(long, value_name = "FILE")]
    pub(crate) from: Option<PathBuf>,
    /// Internal: be one load client process with this spec (JSON)
    #[arg(long, hide = true, value_name = "SPEC")]
    pub(crate) load_client: Option<String>,
}

/// How big a run is: the full bench, `--quick` or `--smoke`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Size {
    /// The figures to publish.
    Full,
    /// A quick look, noisier.
    Quick,
    /// Everything once, tiny: proves it runs, measures nothing.
    Smoke,
}

impl Size {
    /// The size the flags ask for.
    pub(crate) fn new(quick: bool, smoke: bool) -> Self {
        match (quick, smoke) {
            (_, true) => Self::Smoke,
            (true, false) => Self::Quick,
            (false, false) => Self::Full,
        }
    }

    /// One of three values, by size.
    pub(crate) fn pick<T>(self, full: T, quick: T, smoke: T) -> T {
        match self {
            Self::Full => full,
            Self::Quick => quick,
            Self::Smoke => smoke,
        }
    }

    /// The scenarios' older two-size rule, extended: a smoke run does a twentieth of a
    /// quick one (at least one).
    pub(crate) fn scale(self, full: usize, quick: usize) -> usize {
        self.pick(full, quick, (quick / 20).max(1))
    }
}
