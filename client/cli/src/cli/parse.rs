//! The values of the command line's flags, checked as the hub would check them, so that a
//! mistake is a usage error naming the flag before anything is sent.

use std::time::Duration;
use warren::proto::TaskState;

/// The most retries the hub allows a request.
pub(crate) const MAX_RETRIES: i64 = 10;
/// The longest timeout the hub allows a task.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest key or value of a label the hub allows.
const MAX_LABEL_LEN: usize = 256;

/// `--timeout`: seconds, more than 0 and at most 30 days.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| "give a number of seconds, e.g. 30 or 0.5".to_owned())?;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err("it must be more than 0 seconds; leave --timeout out for none".into());
    }
    let limit = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
    if limit > MAX_TIMEOUT {
        return Err("it must be at most 30 days (2592000 seconds)".into());
    }
    Ok(limit)
}

/// `--reconnect-timeout`: seconds (0 or more), or an age like `90s` or `5m`.
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => {
            Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
        }
        Ok(_) => Err("it must be 0 seconds or more".into()),
        Err(_) => warren_proto::os::units::parse_age(text),
    }
}

/// `--env NAME=VALUE`.
pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("write it as NAME=VALUE, with a name before the `=`".into()),
    }
}

/// `--label`/`--where KEY=VALUE`, each at most as long as the hub allows.
pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => {
            if key.len() > MAX_LABEL_LEN || value.len() > MAX_LABEL_LEN {
                return Err(format!(
                    "a label's key and value are at most {MAX_LABEL_LEN} bytes each"
                ));
            }
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err("write it as KEY=VALUE, with a key before the `=`".into()),
    }
}

/// `--signal`: a name or a number.
pub(crate) fn parse_signal(text: &str) -> Result<i32, String> {
    warren_proto::os::signals::parse(text)
}

/// Every state, in the order people think of them.
const STATES: [TaskState; 8] = [
    TaskState::Waiting,
    TaskState::Queued,
    TaskState::Running,
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Aborted,
    TaskState::TimedOut,
    TaskState::Lost,
];

/// `--state`: a state by its CLI name (`timed-out`, `TIMED_OUT`...).
pub(crate) fn parse_state(text: &str) -> Result<TaskState, String> {
    let wanted = text.to_ascii_lowercase().replace('_', "-");
    STATES
        .into_iter()
        .find(|s| s.label() == wanted)
        .ok_or_else(|| {
            let names: Vec<_> = STATES.iter().map(|s| s.label()).collect();
            format!("use one of {}", names.join(", "))
        })
}
