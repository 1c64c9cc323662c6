//! A cell's way back: its output as it comes, then its typed result ([`CellResult`]).

use bytes::Bytes;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::events::{CellError, EventKind, Events, Outcome, OutputStream};
use crate::{Error, Result};

/// How a cell ended, typed.
///
/// ```
/// # fn show(result: warren::CellResult) {
/// match result {
///     warren::CellResult::Ok { value_repr } => println!("Out: {value_repr}"),
///     warren::CellResult::Error { name, value, traceback } => eprint!("{traceback}"),
///     warren::CellResult::Failed(outcome) => eprintln!("{}", outcome.error),
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CellResult {
    /// It ran to its end: the repr of its last expression's value (empty: none).
    Ok {
        /// As `Out[n]` shows it.
        value_repr: String,
    },
    /// It raised (or was interrupted: `KeyboardInterrupt`, `Interrupted`).
    Error {
        /// The exception's type.
        name: String,
        /// Its text.
        value: String,
        /// The traceback.
        traceback: String,
    },
    /// It did not end on its own terms, and its interpreter said nothing of it: lost with
    /// its session, aborted, timed out, or refused by a dead session; the outcome says why.
    Failed(Outcome),
}

impl CellResult {
    /// Whether the cell ran to its end without an error.
    ///
    /// ```
    /// assert!(warren::CellResult::Ok { value_repr: "42".into() }.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }
}

impl From<&Outcome> for CellResult {
    fn from(outcome: &Outcome) -> Self {
        match &outcome.cell_error {
            Some(CellError {
                name,
                value,
                traceback,
            }) => Self::Error {
                name: name.clone(),
                value: value.clone(),
                traceback: traceback.clone(),
            },
            None if outcome.succeeded() => Self::Ok {
                value_repr: outcome.value_repr.clone(),
            },
            None => Self::Failed(outcome.clone()),
        }
    }
}

/// One thing a running cell did.
#[derive(Clone, Debug, PartialEq)]
pub enum CellEvent {
    /// Bytes it wrote to fd 1 or 2.
    Output {
        /// Which.
        stream: OutputStream,
        /// The bytes.
        data: Bytes,
    },
    /// It ended: the last event.
    Done {
        /// How, typed.
        result: CellResult,
        /// Its task's end (state, times, and the same result untyped).
        outcome: Box<Outcome>,
    },
}

/// A cell on its way: its output as it comes, then its end ([`CellEvent::Done`]).
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// # async fn f(session: warren::Session) -> warren::Result<()> {
/// let mut cell = session.execute("print('hi'); 6 * 7").await?;
/// while let Some(event) = cell.try_next().await? {
///     if let warren::CellEvent::Done { result, .. } = event {
///         println!("{result:?}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Cell {
    task_id: u64,
    events: Events,
}

impl Cell {
    /// A cell's events, as `Session::execute` starts them.
    pub(crate) fn new(events: Events) -> Self {
        Self { task_id: 0, events }
    }

    /// The cell's task id (`warren result`, `warren attach` take it), once its first event
    /// has been read (0 before).
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// Waits for the cell to end; returns what it wrote to stdout and stderr, and how it ended.
    ///
    /// ```no_run
    /// # async fn f(session: warren::Session) -> warren::Result<()> {
    /// let (stdout, _stderr, result) = session.execute("print(1)").await?.output().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn output(mut self) -> Result<(Vec<u8>, Vec<u8>, CellResult)> {
        use futures_util::TryStreamExt;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(event) = self.try_next().await? {
            match event {
                CellEvent::Output {
                    stream: OutputStream::Stdout,
                    data,
                } => stdout.extend_from_slice(&data),
                CellEvent::Output { data, .. } => stderr.extend_from_slice(&data),
                CellEvent::Done { result, .. } => return Ok((stdout, stderr, result)),
            }
        }
        Err(Error::CellCut(self.task_id))
    }

    /// Waits for the cell to end (its output is dropped); returns how it ended.
    ///
    /// ```no_run
    /// # async fn f(session: warren::Session) -> warren::Result<()> {
    /// let result = session.execute("x = 1").await?.result().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn result(self) -> Result<CellResult> {
        Ok(self.output().await?.2)
    }
}

impl Stream for Cell {
    type Item = Result<CellEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let event = match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    self.task_id = event.task_id;
                    event
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match event.kind {
                EventKind::Output { stream, data } => {
                    return Poll::Ready(Some(Ok(CellEvent::Output { stream, data })));
                }
                EventKind::Result(outcome) => {
                    let result = CellResult::from(&outcome);
                    let outcome = Box::new(outcome);
                    return Poll::Ready(Some(Ok(CellEvent::Done { result, outcome })));
                }
                _ => continue,
            }
        }
    }
}
