//! Where a mapped task's output goes: held until the task ends and then shown whole, stdout to
//! stdout and stderr to stderr (GNU parallel's `--group`), or written as it comes to
//! `--results DIR/<task id>/{stdout,stderr}` beside the argument (`DIR/<task id>/arg`).
//!
//! Held output stays in memory up to [`IN_MEMORY`] per stream, and past that goes to an
//! unnamed temporary file, so the client's memory does not grow with what tasks write.

use anyhow::Context;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use warren::OutputStream;

/// Bytes of one stream of one task held in memory before they go to a temporary file.
const IN_MEMORY: usize = 256 << 10;

/// One stream's held bytes.
#[derive(Debug, Default)]
pub(crate) struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
}

impl Spool {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() <= IN_MEMORY {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = tempfile::tempfile()?;
                file.write_all(&self.memory)?;
                self.memory = Vec::new();
                self.file.insert(file)
            }
        };
        file.write_all(data)
    }

    /// Writes everything held to `to`.
    fn copy_to(&mut self, to: &mut impl Write) -> io::Result<()> {
        to.write_all(&self.memory)?;
        if let Some(file) = &mut self.file {
            file.rewind()?;
            io::copy(file, to)?;
        }
        to.flush()
    }
}

/// A task's output on its way to where it is shown or kept.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Held, to be shown whole once the task ends.
    Held {
        /// Its stdout.
        stdout: Spool,
        /// Its stderr.
        stderr: Spool,
    },
    /// Written to files under the results directory.
    Files {
        /// `stdout`.
        stdout: File,
        /// `stderr`.
        stderr: File,
    },
}

impl Sink {
    /// Holds the output, to show once the task ends.
    pub(crate) fn held() -> Self {
        Self::Held {
            stdout: Spool::default(),
            stderr: Spool::default(),
        }
    }

    /// Writes the output to `DIR/<task>/stdout` and `stderr`, with the argument in `arg`.
    pub(crate) fn files(dir: &Path, task: u64, arg: &str) -> anyhow::Result<Self> {
        let dir = task_dir(dir, task);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let create = |name: &str| {
            let path = dir.join(name);
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))
        };
        create("arg")?.write_all(arg.as_bytes())?;
        Ok(Self::Files {
            stdout: create("stdout")?,
            stderr: create("stderr")?,
        })
    }

    /// Takes bytes the task wrote.
    pub(crate) fn write(&mut self, stream: OutputStream, data: &[u8]) -> io::Result<()> {
        match (self, stream) {
            (Self::Held { stdout, .. }, OutputStream::Stdout) => stdout.write(data),
            (Self::Held { stderr, .. }, OutputStream::Stderr) => stderr.write(data),
            (Self::Files { stdout, .. }, OutputStream::Stdout) => stdout.write_all(data),
            (Self::Files { stderr, .. }, OutputStream::Stderr) => stderr.write_all(data),
            // What the task was given is not its output.
            (_, OutputStream::Stdin) => Ok(()),
        }
    }

    /// Shows what was held (nothing for files): stdout, then stderr.
    pub(crate) fn show(&mut self) -> io::Result<()> {
        if let Self::Held { stdout, stderr } = self {
            stdout.copy_to(&mut io::stdout().lock())?;
            stderr.copy_to(&mut io::stderr().lock())?;
        }
        Ok(())
    }
}

/// Where a task's results go.
pub(crate) fn task_dir(dir: &Path, task: u64) -> PathBuf {
    dir.join(task.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_output_past_the_memory_bound_goes_to_a_file_and_comes_back_whole() {
        let mut spool = Spool::default();
        let chunk = vec![b'x'; 100 << 10];
        for _ in 0..5 {
            spool.write(&chunk).expect("write");
        }
        spool.write(b"end").expect("write");
        assert!(spool.memory.is_empty() && spool.file.is_some());
        let mut out = Vec::new();
        spool.copy_to(&mut out).expect("copy");
        assert_eq!(out.len(), 500 * 1024 + 3);
        assert!(out.ends_with(b"xend"));
    }
}
