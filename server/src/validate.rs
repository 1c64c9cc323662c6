//! Checks on everything a caller or engine sends, before anything runs.

use prost::Message;
use std::collections::HashMap;
use warren_proto::auth::quote;
use warren_proto::v1::{ExecuteRequest, Hello, TaskSpec, task_spec};

use crate::error::HubError;

pub(crate) mod sessions;
pub(crate) mod stdin;

/// The longest timeout a task may ask for: 30 days.
pub(crate) const MAX_TIMEOUT_MS: u64 = 30 * 24 * 3600 * 1000;
/// The most slots an engine may offer.
pub(crate) const MAX_SLOTS: u32 = 4096;
/// The largest request the hub takes.
pub(crate) const MAX_REQUEST: usize = 16 << 20;
/// The most stdin a task may be given.
pub(crate) const MAX_STDIN: usize = 8 << 20;
/// The most requests one SubmitBatch may carry.
pub(crate) const MAX_BATCH: usize = 10_000;
/// The most tasks one request may wait for (after and after_ok together).
pub(crate) const MAX_DEPENDENCIES: usize = 65_536;
/// The most retries a request may ask for.
pub(crate) const MAX_RETRIES: u32 = 10;
/// The most labels a task or an engine may have, and their longest key or value.
const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 256;
/// The most tasks an engine may report when it registers again.
const MAX_REPORTS: usize = 65_536;
/// The longest uuid, hostname and version an engine may give.
pub(crate) const MAX_UUID: usize = 128;
/// The longest hostname (a DNS name is at most 253 bytes).
pub(crate) const MAX_HOSTNAME: usize = 255;
/// The longest software version.
pub(crate) const MAX_VERSION: usize = 64;
/// The longest error text an engine may report for a task; longer text is cut.
pub(crate) const MAX_ERROR: usize = 4096;
/// The largest message an engine may send: an output chunk is at most 1 MiB, and a Hello
/// with every report it may carry about 2 MiB.
pub(crate) const MAX_ENGINE_MESSAGE: usize = 4 << 20;

/// Checks a whole request: its size, its spec, its retries and labels.
pub(crate) fn request(request: ExecuteRequest) -> Result<ExecuteRequest, HubError> {
    let size = request.encoded_len();
    if size > MAX_REQUEST {
        return Err(HubError::exhausted(format!(
            "the request is {size} bytes, over the hub's limit of {MAX_REQUEST}; send large inputs another way (a file on the engines' machine)"
        )));
    }
    if let Some(spec) = &request.spec
        && spec.stdin.len() > MAX_STDIN
    {
        return Err(HubError::exhausted(format!(
            "stdin of {} bytes is over the limit of {MAX_STDIN}; put large inputs in a file on the engines' machine",
            spec.stdin.len()
        )));
    }
    if request.retries > 0 && request.spec.as_ref().is_some_and(|s| s.stream_stdin) {
        return Err(HubError::invalid(
            "streamed stdin can't be given again to a retry; drop the retries, or give the input with --stdin FILE and --detach",
        ));
    }
    if request.retries > MAX_RETRIES {
        return Err(HubError::invalid(format!(
            "retries {} is more than the most allowed, {MAX_RETRIES}",
            request.retries
        )));
    }
    labels("labels", &request.labels)?;
    if let Some(targets) = &request.targets {
        labels("targets.engine_labels", &targets.engine_labels)?;
    }
    let mut request = request;
    request.spec = Some(spec(request.spec.take())?);
    dependencies(&mut request)?;
    Ok(request)
}

/// Checks a request's dependencies: bounded, real ids, none both in `after` and `after_ok`;
/// each list sorted, with repeats dropped.
fn dependencies(request: &mut ExecuteRequest) -> Result<(), HubError> {
    let count = request.after.len() + request.after_ok.len();
    if count > MAX_DEPENDENCIES {
        return Err(HubError::invalid(format!(
            "the request waits for {count} tasks; at most {MAX_DEPENDENCIES} are allowed (wait for one task that waits for the others)"
        )));
    }
    for list in [&mut request.after, &mut request.after_ok] {
        list.sort_unstable();
        list.dedup();
    }
    if request.after.first() == Some(&0) || request.after_ok.first() == Some(&0) {
        return Err(HubError::invalid(
            "task id 0 in after or after_ok names no task: ids start at 1",
        ));
    }
    if let Some(both) = request
        .after
        .iter()
        .find(|id| request.after_ok.binary_search(id).is_ok())
    {
        return Err(HubError::invalid(format!(
            "task {both} is in both after and after_ok; name it once (after_ok if it must succeed)"
        )));
    }
    Ok(())
}

/// Checks a batch: bounded in requests and bytes, and each request as Submit checks it (an
/// error names the request's index).
pub(crate) fn batch(requests: Vec<ExecuteRequest>) -> Result<Vec<ExecuteRequest>, HubError> {
    if requests.is_empty() {
        return Err(HubError::invalid(
            "the batch has no requests; give at least one",
        ));
    }
    if requests.len() > MAX_BATCH {
        return Err(HubError::exhausted(format!(
            "the batch has {} requests; at most {MAX_BATCH} are allowed in one call, so send several",
            requests.len()
        )));
    }
    let size: usize = requests.iter().map(Message::encoded_len).sum();
    if size > MAX_REQUEST {
        return Err(HubError::exhausted(format!(
            "the batch is {size} bytes, over the hub's limit of {MAX_REQUEST}; send it in several calls"
        )));
    }
    requests
        .into_iter()
        .enumerate()
        .map(|(index, r)| request(r).map_err(|err| HubError::in_batch(index, err)))
        .collect()
}

/// Checks a label map: bounded, no empty keys, no NUL bytes.
pub(crate) fn labels(what: &str, labels: &HashMap<String, String>) -> Result<(), HubError> {
    if labels.len() > MAX_LABELS {
        return Err(HubError::invalid(format!(
            "{what} has {} entries; at most {MAX_LABELS} are allowed",
            labels.len()
        )));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > MAX_LABEL_LEN || value.len() > MAX_LABEL_LEN {
            return Err(HubError::invalid(format!(
                "{what}: label {} must have a key of 1 to {MAX_LABEL_LEN} bytes and a value of at most {MAX_LABEL_LEN}",
                quote(key)
            )));
        }
        no_nul(&format!("{what}: label {}", quote(key)), key)?;
        no_nul(&format!("{what}: label {}'s value", quote(key)), value)?;
    }
    Ok(())
}

/// Labels as people write them, `a=b, c=d`, sorted; cut short (saying so) past a few hundred
/// characters, since they end up in messages.
pub(crate) fn labels_text(labels: &HashMap<String, String>) -> String {
    const SHOWN: usize = 200;
    let mut pairs: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    let text = pairs.join(", ");
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}... ({} labels)", &text[..cut], labels.len()),
        None => text,
    }
}

fn no_nul(what: &str, text: &str) -> Result<(), HubError> {
    if text.contains('\0') {
        Err(HubError::invalid(format!(
            "{what} contains a NUL byte, which no program can receive; remove it"
        )))
    } else {
        Ok(())
    }
}

/// Checks a task spec: a command to run, and nothing a process could not be given.
pub(crate) fn spec(spec: Option<TaskSpec>) -> Result<TaskSpec, HubError> {
    let spec = spec.ok_or_else(|| {
        HubError::invalid("the request has no spec: give spec.argv or spec.script")
    })?;
    match &spec.command {
        None => {
            return Err(HubError::invalid(
                "the spec has no command: give spec.argv (a program and its arguments) or spec.script (run with sh -c)",
            ));
        }
        Some(task_spec::Command::Argv(argv)) => {
            match argv.args.first() {
                None => {
                    return Err(HubError::invalid(
                        "spec.argv is empty: give at least the program to run",
                    ));
                }
                Some(program) if program.is_empty() => {
                    return Err(HubError::invalid(
                        "spec.argv[0], the program to run, is empty",
                    ));
                }
                Some(_) => {}
            }
            for (i, arg) in argv.args.iter().enumerate() {
                no_nul(&format!("spec.argv[{i}]"), arg)?;
            }
        }
        Some(task_spec::Command::Script(script)) => {
            if script.trim().is_empty() {
                return Err(HubError::invalid(
                    "spec.script is empty: give the shell text to run",
                ));
            }
            no_nul("spec.script", script)?;
        }
        Some(task_spec::Command::Code(code)) => no_nul("spec.code", code)?,
    }
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains('=') {
            return Err(HubError::invalid(format!(
                "environment variable name {} is not valid: it must be non-empty and have no `=`",
                quote(name)
            )));
        }
        no_nul(&format!("environment variable {}", quote(name)), name)?;
        no_nul(
            &format!("the value of environment variable {}", quote(name)),
            value,
        )?;
    }
    no_nul("spec.cwd", &spec.cwd)?;
    stdin::streamed(&spec)?;
    match spec.timeout_ms {
        Some(0) => {
            return Err(HubError::invalid(
                "a timeout of 0 ms would stop the task at once; leave timeout_ms unset for none",
            ));
        }
        Some(ms) if ms > MAX_TIMEOUT_MS => {
            return Err(HubError::invalid(format!(
                "timeout of {ms} ms is more than 30 days; give a shorter one, or leave it unset for none"
            )));
        }
        _ => {}
    }
    Ok(spec)
}

/// Checks a signal number; 0 means SIGINT.
pub(crate) fn signal(signal: i32) -> Result<i32, HubError> {
    if signal == 0 {
        return Ok(rustix::process::Signal::INT.as_raw());
    }
    match rustix::process::Signal::from_named_raw(signal) {
        Some(signal) => Ok(signal.as_raw()),
        None => Err(HubError::invalid(format!(
            "{signal} is not a signal number this hub knows; use a standard one (e.g. 2 for SIGINT, 15 for SIGTERM)"
        ))),
    }
}

/// Checks one of an engine's names: bounded, and printable (it ends up in tables and logs).
fn engine_text(what: &str, text: &str, min: usize, max: usize) -> Result<(), HubError> {
    if text.len() < min || text.len() > max {
        return Err(HubError::invalid(format!(
            "the engine's {what} is {} bytes; it must be {min} to {max}",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(HubError::invalid(format!(
            "the engine's {what} {} has control characters",
            quote(text)
        )));
    }
    Ok(())
}

/// Cuts an engine's error text to [`MAX_ERROR`] bytes (at a character boundary).
pub(crate) fn engine_error(text: &mut String) {
    if text.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [cut]");
    }
}

/// Checks a path to copy to or from: 1 to 4096 bytes, without NUL.
pub(crate) fn copy_path(path: &str) -> Result<(), HubError> {
    if path.is_empty() || path.len() > warren_files::MAX_PATH || path.contains('\0') {
        return Err(HubError::invalid(format!(
            "a path to copy to or from is 1 to {} bytes, without NUL",
            warren_files::MAX_PATH
        )));
    }
    Ok(())
}

/// Checks an engine's introduction: every string and map in it is bounded.
pub(crate) fn hello(hello: &Hello) -> Result<(), HubError> {
    engine_text("uuid", &hello.uuid, 1, MAX_UUID)?;
    engine_text("hostname", &hello.hostname, 0, MAX_HOSTNAME)?;
    engine_text("version", &hello.version, 0, MAX_VERSION)?;
    if hello.tasks.len() > MAX_REPORTS || hello.sessions.len() > MAX_REPORTS {
        return Err(HubError::invalid(format!(
            "an engine may report at most {MAX_REPORTS} tasks and {MAX_REPORTS} sessions"
        )));
    }
    labels("the engine's labels", &hello.labels)?;
    if hello.slots > MAX_SLOTS {
        return Err(HubError::invalid(format!(
            "an engine may offer at most {MAX_SLOTS} slots, not {}",
            hello.slots
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::v1::Argv;

    fn argv(args: &[&str]) -> Option<TaskSpec> {
        Some(TaskSpec {
            command: Some(task_spec::Command::Argv(Argv {
                args: args.iter().map(|s| s.to_string()).collect(),
            })),
            ..Default::default()
        })
    }

    #[test]
    fn bad_specs_are_invalid_arguments_with_reasons() {
        for (spec, needle) in [
            (None, "no spec"),
            (Some(TaskSpec::default()), "no command"),
            (argv(&[]), "argv is empty"),
            (argv(&[""]), "is empty"),
            (argv(&["echo", "a\0b"]), "NUL"),
        ] {
            let err = tonic::Status::from(super::spec(spec).expect_err(needle));
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().contains(needle), "{}", err.message());
        }
        let mut long = argv(&["sleep"]).expect("spec");
        long.timeout_ms = Some(MAX_TIMEOUT_MS + 1);
        assert!(super::spec(Some(long.clone())).is_err());
        long.timeout_ms = Some(0);
        assert!(super::spec(Some(long)).is_err());
        assert!(super::spec(argv(&["true"])).is_ok());
    }

    #[test]
    fn every_string_an_engine_sends_is_bounded() {
        let good = Hello {
            uuid: "u".into(),
            hostname: "host".into(),
            version: "0.1.0".into(),
            ..Hello::default()
        };
        assert!(hello(&good).is_ok());
        for bad in [
            Hello {
                hostname: "h".repeat(30_000_000),
                ..good.clone()
            },
            Hello {
                version: "v".repeat(65),
                ..good.clone()
            },
            Hello {
                uuid: "u".repeat(129),
                ..good.clone()
            },
            Hello {
                uuid: String::new(),
                ..good.clone()
            },
            Hello {
                hostname: "evil\nhost".into(),
                ..good.clone()
            },
        ] {
            let err = tonic::Status::from(hello(&bad).expect_err("refused"));
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().len() < 300, "{}", err.message());
        }
        let mut error = "é".repeat(5000);
        engine_error(&mut error);
        assert!(error.len() <= MAX_ERROR + 10 && error.ends_with("[cut]"));
    }

    #[test]
    fn signals_default_to_sigint_and_stay_in_range() {
        assert_eq!(signal(0).ok(), Some(2));
        assert_eq!(signal(15).ok(), Some(15));
        assert!(signal(-1).is_err());
        assert!(signal(65).is_err());
        assert!(signal(40).is_err(), "real-time signals are not named");
    }
}
