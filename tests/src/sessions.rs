//! Sessions in tests: open them, run cells, read their output and results.

use futures_util::TryStreamExt;
use tokio::time::timeout;
use warren::proto::SessionState;
use warren::{CellEvent, CellResult, Client, Session, SessionOptions};

use crate::process::PATIENCE;

/// What a cell did: its stdout, its stderr and its result.
#[derive(Debug)]
pub struct Ran {
    /// Bytes written to fd 1.
    pub stdout: Vec<u8>,
    /// Bytes written to fd 2.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub result: CellResult,
    /// Its task id.
    pub task_id: u64,
}

impl Ran {
    /// The value's repr of a cell that must have ended ok.
    #[track_caller]
    pub fn value(&self) -> &str {
        match &self.result {
            CellResult::Ok { value_repr } => value_repr,
            other => panic!(
                "the cell did not end ok: {other:?}\nstderr: {}",
                self.stderr_text()
            ),
        }
    }

    /// Its stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Its stderr as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The error of a cell that must have raised: (name, value, traceback).
    #[track_caller]
    pub fn error(&self) -> (&str, &str, &str) {
        match &self.result {
            CellResult::Error {
                name,
                value,
                traceback,
            } => (name, value, traceback),
            other => panic!("the cell did not raise: {other:?}"),
        }
    }
}

/// Runs a cell to its end (within [`PATIENCE`]).
pub async fn run_cell(session: &Session, code: &str) -> Ran {
    let mut cell = session.execute(code).await.expect("execute a cell");
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = timeout(PATIENCE, async {
        while let Some(event) = cell.try_next().await.expect("the cell's events") {
            match event {
                CellEvent::Output {
                    stream: warren::OutputStream::Stdout,
                    data,
                } => stdout.extend_from_slice(&data),
                CellEvent::Output { data, .. } => stderr.extend_from_slice(&data),
                CellEvent::Done { result, .. } => return result,
            }
        }
        panic!("the cell's events ended without a result")
    })
    .await
    .unwrap_or_else(|_| panic!("cell {code:?} did not end in time"));
    Ran {
        stdout,
        stderr,
        result,
        task_id: cell.task_id(),
    }
}

/// Opens one session and checks that it is ready.
pub async fn open(client: &Client, options: SessionOptions) -> Session {
    let session = client.open_session(options).await.expect("open a session");
    assert_eq!(
        session.info().state(),
        SessionState::Idle,
        "{:?}",
        session.info()
    );
    session
}

/// Waits until a session is in `state`; returns its record.
pub async fn wait_for_state(
    client: &Client,
    id: u64,
    state: SessionState,
) -> warren::proto::SessionInfo {
    let mut last = None;
    let found = crate::process::eventually(PATIENCE, || {
        let client = client.clone();
        async move {
            let info = client.session(id).await.expect("get the session");
            if info.state() == state {
                Ok(info)
            } else {
                Err(info)
            }
        }
    })
    .await
    .map_err(|info| last = Some(info));
    found.unwrap_or_else(|()| panic!("session {id} never became {state:?}: {last:?}"))
}
