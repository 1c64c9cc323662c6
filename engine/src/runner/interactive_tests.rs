//! Streamed stdin and terminals, without a hub: bytes in order and once each, the end, a
//! terminal's size and its Ctrl-C, and a stdin cut when the hub that held it is gone.

use super::tests::{Engine, engine, finished, messages_until, output, result_of, script};
use crate::control::Control;
use bytes::Bytes;
use warren_proto::v1::engine_message::Kind;
use warren_proto::v1::{StdinData, TaskSpec, TaskState, Tty, WindowSize, task_result};

fn streamed(text: &str, tty: Option<Tty>) -> TaskSpec {
    TaskSpec {
        stream_stdin: true,
        tty,
        ..script(text)
    }
}

fn chunk(offset: u64, data: &'static [u8]) -> Control {
    Control::Stdin(StdinData {
        task_id: 7,
        attempt: 1,
        offset,
        data: Bytes::from_static(data),
        eof: false,
        hangup: false,
    })
}

fn eof(offset: u64) -> Control {
    Control::Stdin(StdinData {
        task_id: 7,
        attempt: 1,
        offset,
        eof: true,
        ..Default::default()
    })
}

/// Waits until the task has written `text` (in all, so far).
async fn wait_for_output(engine: &Engine, seen: &mut Vec<Kind>, text: &str) {
    let more = messages_until(&engine.tasks, |kind| {
        matches!(kind, Kind::Output(out) if String::from_utf8_lossy(&out.data).contains(text))
            || finished(kind)
    })
    .await;
    seen.extend(more);
    assert!(output(seen).contains(text), "{:?}", output(seen));
}

#[tokio::test]
async fn streamed_stdin_is_written_in_order_once_and_its_end_closes_it() {
    let engine = engine();
    engine.runners.start(3, 7, 1, streamed("cat", None));
    for control in [
        chunk(0, b"hello "),
        // Sent again (after a reconnection): skipped as far as it was written.
        chunk(0, b"hello "),
        chunk(3, b"lo world"),
        eof(11),
    ] {
        engine.tasks.control(7, control);
    }
    let seen = messages_until(&engine.tasks, finished).await;
    assert_eq!(output(&seen), "hello world");
    let last_ack = seen.iter().rev().find_map(|kind| match kind {
        Kind::StdinAck(ack) => Some((ack.written, ack.closed)),
        _ => None,
    });
    assert_eq!(last_ack, Some((11, true)));
    assert_eq!(result_of(&seen).state(), TaskState::Succeeded);
}

#[tokio::test]
async fn a_terminal_has_its_size_its_term_takes_resizes_and_ctrl_c_as_a_byte() {
    let engine = engine();
    let tty = Tty {
        rows: 33,
        cols: 101,
        term: String::new(),
    };
    // The size is polled, not trapped on SIGWINCH, and no trap waits for the Ctrl-C: dash can
    // drop a signal that arrives while it forks or runs another trap. Whatever is in the
    // foreground when the Ctrl-C comes (the shell or the `sleep` it became) dies of SIGINT.
    let text = "test -t 0 && stty size; echo \"term=$TERM\"; echo ready; \
                i=0; while [ \"$(stty size)\" = \"33 101\" ] && [ $i -lt 400 ]; do \
                sleep 0.05; i=$((i+1)); done; \
                echo \"resized to $(stty size)\"; exec sleep 100";
    engine.runners.start(3, 7, 1, streamed(text, Some(tty)));
    let mut seen = Vec::new();
    wait_for_output(&engine, &mut seen, "ready").await;
    let shown = output(&seen);
    assert!(shown.contains("33 101\r\n"), "{shown:?}");
    assert!(shown.contains("term=xterm-256color"), "{shown:?}");

    engine.tasks.control(
        7,
        Control::Resize(WindowSize {
            rows: 40,
            cols: 120,
        }),
    );
    wait_for_output(&engine, &mut seen, "resized to 40 120").await;
    engine.tasks.control(7, chunk(0, b"\x03"));
    seen.extend(messages_until(&engine.tasks, finished).await);
    let result = result_of(&seen);
    assert_eq!(
        result.exit,
        Some(task_result::Exit::Signal(
            rustix::process::Signal::INT.as_raw()
        )),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_cut_stdin_hangs_the_task_up_and_says_why() {
    let engine = engine();
    engine.runners.start(3, 7, 1, streamed("cat", None));
    engine.tasks.control(7, chunk(0, b"partial"));
    let mut seen = Vec::new();
    wait_for_output(&engine, &mut seen, "partial").await;
    engine
        .tasks
        .control(7, Control::CutStdin("the hub restarted".into()));
    seen.extend(messages_until(&engine.tasks, finished).await);
    let result = result_of(&seen);
    assert_eq!(result.state(), TaskState::Failed, "{result:?}");
    assert_eq!(result.error, "the hub restarted");
    assert_eq!(
        result.exit,
        Some(task_result::Exit::Signal(
            rustix::process::Signal::HUP.as_raw()
        ))
    );
}
