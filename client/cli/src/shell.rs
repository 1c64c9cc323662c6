//! `warren completions SHELL` and `warren man [DIR]`: shell completions and man pages, both
//! generated from the same clap definitions as `--help`, so none of them can drift.

use anyhow::Context;
use clap::CommandFactory;
use std::path::Path;

use crate::cli::Cli;

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    use std::io::Write;
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a write error, such as `| head` closing early.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "warren", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(0)
}

/// Writes `warren.1` and a page per command (`warren-exec.1`...) into `dir`, or prints
/// `warren.1` on stdout.
pub(crate) fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the man pages in {}", dir.display()))?;
            eprintln!(
                "warren: wrote the man pages in {}; read them with `man -l {}/warren.1`, or put them in a directory on MANPATH (e.g. ~/.local/share/man/man1)",
                dir.display(),
                dir.display()
            );
        }
        None => {
            use std::io::Write;
            let mut page = Vec::new();
            // As generate_to renders it: no page for `help`, so none listed.
            clap_mangen::Man::new(command.disable_help_subcommand(true)).render(&mut page)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&page)?;
            out.flush()?;
        }
    }
    Ok(0)
}
