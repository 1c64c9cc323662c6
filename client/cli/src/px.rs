//! `warren px`: run a cell in every session of a group, like IPython's `%px`, or an
//! interactive prompt (`-i`) where each entry is such a cell. Ctrl-C interrupts the cells
//! running, not this command.

use anyhow::Context as _;
use futures_util::TryStreamExt;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read as _};
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use warren::{CellResult, Client, Event, EventKind, Job, OutputStream};

use crate::cli::PxArgs;
use crate::output::{prefix_lines, whole_lines, write_to};

/// Where the cells go.
#[derive(Clone, Debug)]
enum Target {
    Group(String),
    Sessions(Vec<u64>),
}

impl Target {
    fn job(&self, code: String, timeout: Option<Duration>) -> Job {
        let job = Job::cell(code);
        let job = match self {
            Self::Group(name) => job.group(name.clone()),
            Self::Sessions(ids) => job.sessions(ids.iter().copied()),
        };
        match timeout {
            Some(limit) => job.timeout(limit),
            None => job,
        }
    }
}

/// Runs `warren px`.
pub(crate) async fn run(client: &Client, args: &PxArgs) -> anyhow::Result<u8> {
    let (target, count) = target(client, args).await?;
    // From here on Ctrl-C interrupts cells instead of ending this command.
    let mut interrupts = signal(SignalKind::interrupt()).context("cannot catch Ctrl-C")?;
    if args.interactive {
        return interactive(client, &target, count > 1, args.timeout, &mut interrupts).await;
    }
    let code = match (&args.code, &args.file) {
        (Some(code), _) => code.clone(),
        (None, Some(path)) => read_source(Some(path))?,
        (None, None) => read_source(None)?,
    };
    let ok = run_cell(
        client,
        &target,
        code,
        count > 1,
        args.timeout,
        &mut interrupts,
    )
    .await?;
    Ok(u8::from(!ok))
}

/// A file's text (`-` or none: stdin's).
fn read_source(path: Option<&PathBuf>) -> anyhow::Result<String> {
    let mut text = String::new();
    match path {
        Some(path) if path.as_os_str() != "-" => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the cell from stdin")?;
        }
    }
    Ok(text)
}

/// The sessions the flags name, and how many there are.
async fn target(client: &Client, args: &PxArgs) -> anyhow::Result<(Target, usize)> {
    if !args.sessions.is_empty() {
        for &id in &args.sessions {
            client.session(id).await?;
        }
        return Ok((Target::Sessions(args.sessions.clone()), args.sessions.len()));
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => {
            let open = client.list_sessions("", false).await?;
            let groups: BTreeSet<String> = open.into_iter().map(|s| s.group).collect();
            match groups.len() {
                0 => anyhow::bail!(
                    "no sessions are open; open some with `warren session open --all --name GROUP`"
                ),
                1 => groups.into_iter().next().unwrap_or_default(),
                _ => {
                    let names: Vec<String> = groups.into_iter().collect();
                    return Err(crate::usage_error(format!(
                        "several groups have open sessions ({}); choose one with --name",
                        names.join(", ")
                    )));
                }
            }
        }
    };
    let sessions = client.list_sessions(&name, false).await?;
    if sessions.is_empty() {
        anyhow::bail!("no open session is in group {name}; `warren session ls` lists them");
    }
    Ok((Target::Group(name), sessions.len()))
}

/// Runs one cell in every target session; prints as it comes; true if every one ended ok.
async fn run_cell(
    client: &Client,
    target: &Target,
    code: String,
    several: bool,
    timeout: Option<Duration>,
    interrupts: &mut Signal,
) -> anyhow::Result<bool> {
    let mut events = client.run(target.job(code, timeout)).await?;
    let mut printer = CellPrinter::new(several);
    loop {
        tokio::select! {
            event = events.try_next() => match event? {
                Some(event) => printer.event(event)?,
                None => break,
            },
            _ = interrupts.recv() => {
                let running = printer.running();
                if !running.is_empty() {
                    client.interrupt(&running, 0).await?;
                }
            }
        }
    }
    Ok(printer.all_ok())
}

/// The prompt: each entry a cell in every target session, until end of input.
async fn interactive(
    client: &Client,
    target: &Target,
    several: bool,
    timeout: Option<Duration>,
    interrupts: &mut Signal,
) -> anyhow::Result<u8> {
    let mut editor = Some(rustyline::DefaultEditor::new().context("cannot start the prompt")?);
    let mut number = 1u32;
    loop {
        let Some(mut taken) = editor.take() else {
            return Ok(0);
        };
        let (back, entry) = tokio::task::spawn_blocking(move || {
            let entry = read_entry(&mut taken, number);
            (taken, entry)
        })
        .await?;
        editor = Some(back);
        let code = match entry {
            Ok(Some(code)) => code,
            Ok(None) => return Ok(0),
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(err) => return Err(err).context("cannot read the prompt"),
        };
        if code.trim().is_empty() {
            continue;
        }
        if let Some(editor) = &mut editor {
            let _ = editor.add_history_entry(code.as_str());
        }
        run_cell(client, target, code, several, timeout, interrupts).await?;
        number += 1;
    }
}

/// One entry: a line, or a block (a line ending with `:` goes on to the next empty line; one
/// ending with `\` goes on to the next). `None` at end of input.
fn read_entry(
    editor: &mut rustyline::DefaultEditor,
    number: u32,
) -> Result<Option<String>, rustyline::error::ReadlineError> {
    use rustyline::error::ReadlineError;
    let first = match editor.readline(&format!("In [{number}]: ")) {
        Ok(line) => line,
        Err(ReadlineError::Eof) => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut block = first.trim_end().ends_with(':');
    let mut more = first.ends_with('\\');
    let mut lines = vec![first];
    let continuation = format!(
        "{:>width$}: ",
        "...",
        width = format!("In [{number}]").len()
    );
    while block || more {
        let line = match editor.readline(&continuation) {
            Ok(line) => line,
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err),
        };
        if block && line.trim().is_empty() {
            break;
        }
        more = line.ends_with('\\');
        block |= line.trim_end().ends_with(':');
        lines.push(line);
    }
    Ok(Some(lines.join("\n")))
}

/// Shows cells' output and results: raw for one session, each line prefixed with its engine
/// for several; values as `Out[engine N]: ...`, errors' tracebacks on stderr.
struct CellPrinter {
    several: bool,
    partial: HashMap<(u64, OutputStream), Vec<u8>>,
    engines: HashMap<u64, u32>,
    ended: BTreeSet<u64>,
    ok: bool,
}

impl CellPrinter {
    fn new(several: bool) -> Self {
        Self {
            several,
            partial: HashMap::new(),
            engines: HashMap::new(),
            ended: BTreeSet::new(),
            ok: true,
        }
    }

    /// Cells seen and not ended.
    fn running(&self) -> Vec<u64> {
        self.engines
            .keys()
            .filter(|id| !self.ended.contains(id))
            .copied()
            .collect()
    }

    fn all_ok(&self) -> bool {
        self.ok && !self.ended.is_empty()
    }

    fn prefix(&self, task_id: u64) -> String {
        format!(
            "[engine {}] ",
            self.engines.get(&task_id).copied().unwrap_or(0)
        )
    }

    fn event(&mut self, event: Event) -> io::Result<()> {
        if event.engine_id != 0 || !self.engines.contains_key(&event.task_id) {
            self.engines.insert(event.task_id, event.engine_id);
        }
        match event.kind {
            EventKind::Output { stream, data } => self.output(event.task_id, stream, &data),
            EventKind::Result(outcome) => {
                self.flush(event.task_id)?;
                self.ended.insert(event.task_id);
                let engine = event.engine_id;
                match CellResult::from(&outcome) {
                    CellResult::Ok { value_repr } if value_repr.is_empty() => {}
                    CellResult::Ok { value_repr } => {
                        write_to(
                            false,
                            format!("Out[engine {engine}]: {value_repr}\n").as_bytes(),
                        )?;
                    }
                    CellResult::Error {
                        name,
                        value,
                        traceback,
                    } => {
                        self.ok = false;
                        let text = if traceback.is_empty() {
                            format!("{name}: {value}\n")
                        } else if traceback.ends_with('\n') {
                            traceback
                        } else {
                            format!("{traceback}\n")
                        };
                        self.lines(event.task_id, OutputStream::Stderr, text.as_bytes())?;
                    }
                    CellResult::Failed(outcome) => {
                        self.ok = false;
                        eprintln!(
                            "warren: cell {} on engine {engine} {}: {}",
                            event.task_id,
                            outcome.state.label(),
                            outcome.error
                        );
                    }
                }
                Ok(())
            }
            EventKind::Gap { bytes, .. } => {
                eprintln!(
                    "warren: cell {}: {bytes} bytes of output were past the hub's output cap and are not shown",
                    event.task_id
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn output(&mut self, task_id: u64, stream: OutputStream, data: &[u8]) -> io::Result<()> {
        if !self.several {
            return write_to(stream == OutputStream::Stderr, data);
        }
        let pending = self.partial.entry((task_id, stream)).or_default();
        match whole_lines(pending, data) {
            Some(complete) => self.lines(task_id, stream, &complete),
            None => Ok(()),
        }
    }

    /// Whole lines, prefixed with their engine when there are several sessions.
    fn lines(&self, task_id: u64, stream: OutputStream, text: &[u8]) -> io::Result<()> {
        let stderr = stream == OutputStream::Stderr;
        if !self.several {
            return write_to(stderr, text);
        }
        write_to(stderr, &prefix_lines(&self.prefix(task_id), text))
    }

    /// What is left of a cell's last lines.
    fn flush(&mut self, task_id: u64) -> io::Result<()> {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            if let Some(mut rest) = self.partial.remove(&(task_id, stream))
                && !rest.is_empty()
            {
                rest.push(b'\n');
                self.lines(task_id, stream, &rest)?;
            }
        }
        Ok(())
    }
}
