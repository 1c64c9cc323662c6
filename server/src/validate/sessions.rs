//! Checks on what callers send about sessions: opening them, and cells.

use std::collections::HashMap;
use warren_proto::v1::{
    ExecuteRequest, OpenSessionsRequest, SessionKind, SessionSpec, TaskSpec, targets, task_spec,
};

use super::{labels, no_nul};
use crate::error::HubError;

/// The longest group name.
const MAX_GROUP: usize = 128;
/// The most sessions one request may list.
const MAX_IDS: usize = 4096;
/// The most arguments an interpreter may be given.
const MAX_ARGS: usize = 256;

/// Whether a request is for cells: code to run, or sessions to run it in.
pub(crate) fn is_cell(request: &ExecuteRequest) -> bool {
    let code = matches!(
        request.spec.as_ref().and_then(|s| s.command.as_ref()),
        Some(task_spec::Command::Code(_))
    );
    let sessions = matches!(
        request.targets.as_ref().and_then(|t| t.selector.as_ref()),
        Some(targets::Selector::Sessions(_) | targets::Selector::SessionGroup(_))
    );
    code || sessions
}

/// Checks a cell request: code (without NUL), aimed at sessions, with nothing a cell can't
/// have (stdin, env, cwd, retries: a cell runs in its session's interpreter).
pub(crate) fn cell(request: ExecuteRequest) -> Result<ExecuteRequest, HubError> {
    let request = super::request(request)?;
    let spec = request.spec.as_ref().cloned().unwrap_or_default();
    let Some(task_spec::Command::Code(_)) = spec.command else {
        return Err(HubError::invalid(
            "sessions run cells: give spec.code (spec.argv and spec.script run as tasks on engines)",
        ));
    };
    let targets = request.targets.as_ref();
    match targets.and_then(|t| t.selector.as_ref()) {
        Some(targets::Selector::Sessions(list)) => {
            if list.ids.is_empty() {
                return Err(HubError::invalid(
                    "targets.sessions lists no session ids; name at least one",
                ));
            }
            if list.ids.len() > MAX_IDS {
                return Err(HubError::invalid(format!(
                    "targets.sessions lists {} sessions; at most {MAX_IDS} are allowed",
                    list.ids.len()
                )));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(twice) = list.ids.iter().find(|id| !seen.insert(**id)) {
                return Err(HubError::invalid(format!(
                    "session {twice} is listed twice in targets.sessions"
                )));
            }
        }
        Some(targets::Selector::SessionGroup(group)) => group_name(group)?,
        _ => {
            return Err(HubError::invalid(
                "spec.code is a cell: aim it at sessions with targets.sessions or targets.session_group (open them with OpenSessions)",
            ));
        }
    }
    if targets.is_some_and(|t| !t.engine_labels.is_empty()) {
        return Err(HubError::invalid(
            "targets.engine_labels select engines for tasks and sessions, not for cells",
        ));
    }
    check_cell_spec(&spec)?;
    if !request.after.is_empty() || !request.after_ok.is_empty() {
        return Err(HubError::invalid(
            "a cell runs after the cells sent before it to its session; leave after and after_ok empty",
        ));
    }
    if request.retries > 0 {
        return Err(HubError::invalid(
            "a cell is never retried: its session's state is on one engine; leave retries at 0",
        ));
    }
    Ok(request)
}

fn check_cell_spec(spec: &TaskSpec) -> Result<(), HubError> {
    let whose = "a cell runs in its session's interpreter";
    if !spec.stdin.is_empty() || spec.stream_stdin {
        return Err(HubError::invalid(format!(
            "{whose}, which has no stdin for it; put the data in the code or a file"
        )));
    }
    if spec.tty.is_some() {
        return Err(HubError::invalid(format!(
            "{whose}, which has no terminal of its own; run it without a tty"
        )));
    }
    if !spec.env.is_empty() || !spec.cwd.is_empty() {
        return Err(HubError::invalid(format!(
            "{whose}: its environment and working directory are the session's (give them at open, or change them from a cell)"
        )));
    }
    Ok(())
}

/// Checks a group name: 1 to 128 bytes of letters, digits and `. _ : -`.
fn group_name(group: &str) -> Result<(), HubError> {
    let ok = !group.is_empty()
        && group.len() <= MAX_GROUP
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(HubError::invalid(format!(
            "group name {:?} is not valid: use 1 to {MAX_GROUP} letters, digits, `.`, `_`, `:` or `-`",
            group.chars().take(MAX_GROUP + 8).collect::<String>()
        )))
    }
}

/// What an `OpenSessions` request asks, checked: the spec, the targets, the group's name.
pub(crate) type Open = (
    SessionSpec,
    (Option<targets::Selector>, HashMap<String, String>),
    String,
);

/// Checks an `OpenSessions` request.
pub(crate) fn open(request: OpenSessionsRequest) -> Result<Open, HubError> {
    let spec = request.spec.ok_or_else(|| {
        HubError::invalid("the request has no spec: give spec.kind (python, bash or custom)")
    })?;
    match spec.kind() {
        SessionKind::Unspecified => {
            return Err(HubError::invalid(
                "spec.kind is unset: choose python, bash or custom",
            ));
        }
        SessionKind::Custom if spec.argv.first().is_none_or(String::is_empty) => {
            return Err(HubError::invalid(
                "a custom session needs spec.argv: the program that speaks the cell protocol, and its arguments",
            ));
        }
        _ => {}
    }
    if spec.argv.len() > MAX_ARGS {
        return Err(HubError::invalid(format!(
            "spec.argv has {} arguments; at most {MAX_ARGS} are allowed",
            spec.argv.len()
        )));
    }
    if spec.argv.first().is_some_and(String::is_empty) {
        return Err(HubError::invalid("spec.argv[0], the program, is empty"));
    }
    for (i, arg) in spec.argv.iter().enumerate() {
        no_nul(&format!("spec.argv[{i}]"), arg)?;
    }
    // The environment and directory are checked as a task's are.
    super::spec(Some(TaskSpec {
        command: Some(task_spec::Command::Code(String::new())),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        ..TaskSpec::default()
    }))?;
    if !request.name.is_empty() {
        group_name(&request.name)?;
    }
    let (selector, engine_labels) = match request.targets {
        Some(t) => (t.selector, t.engine_labels),
        None => (None, HashMap::new()),
    };
    labels("targets.engine_labels", &engine_labels)?;
    if matches!(
        selector,
        Some(targets::Selector::Sessions(_) | targets::Selector::SessionGroup(_))
    ) {
        return Err(HubError::invalid(
            "sessions are opened on engines: give targets.all, targets.engines or targets.any",
        ));
    }
    Ok((spec, (selector, engine_labels), request.name))
}
