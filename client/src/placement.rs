//! Where a [`Job`](crate::Job)'s tasks or a [`SessionOptions`](crate::SessionOptions)'
//! sessions go: both build the same `Targets` message, here, and their builder methods
//! (`all`, `any`, `engines`, `on_engines_labelled`...) only hand on to it.

use std::collections::HashMap;
use warren_proto::v1::{AllEngines, AnyEngine, EngineIds, SessionIds, Targets, targets};

/// A `Targets` message being built: whichever engine the hub picks until told otherwise.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    selector: targets::Selector,
    engine_labels: HashMap<String, String>,
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            selector: targets::Selector::Any(AnyEngine {}),
            engine_labels: HashMap::new(),
        }
    }
}

impl Placement {
    /// Every engine.
    pub(crate) fn all(&mut self) {
        self.selector = targets::Selector::All(AllEngines {});
    }

    /// Whichever engine the hub picks.
    pub(crate) fn any(&mut self) {
        self.selector = targets::Selector::Any(AnyEngine {});
    }

    /// Each of these engines.
    pub(crate) fn engines(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.selector = targets::Selector::Engines(EngineIds {
            ids: ids.into_iter().collect(),
        });
    }

    /// Each of these sessions (cells only).
    pub(crate) fn sessions(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.selector = targets::Selector::Sessions(SessionIds {
            ids: ids.into_iter().collect(),
        });
    }

    /// Each session of this group (cells only).
    pub(crate) fn group(&mut self, name: String) {
        self.selector = targets::Selector::SessionGroup(name);
    }

    /// Only engines with this label.
    pub(crate) fn labelled(&mut self, key: String, value: String) {
        self.engine_labels.insert(key, value);
    }

    /// The message.
    pub(crate) fn into_targets(self) -> Targets {
        Targets {
            selector: Some(self.selector),
            engine_labels: self.engine_labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, SessionOptions};

    #[test]
    fn jobs_and_sessions_build_the_same_targets() {
        let job = Job::argv(["true"]).any().on_engines_labelled("gpu", "yes");
        let session = SessionOptions::python().on_engines_labelled("gpu", "yes");
        let targets = job.into_request().targets.expect("targets");
        assert_eq!(Some(targets.clone()), session.into_request().targets);
        assert_eq!(targets.selector, Some(targets::Selector::Any(AnyEngine {})));
        assert_eq!(
            targets.engine_labels.get("gpu").map(String::as_str),
            Some("yes")
        );

        let mut placement = Placement::default();
        placement.engines([1, 3]);
        placement.all();
        assert_eq!(
            placement.into_targets().selector,
            Some(targets::Selector::All(AllEngines {}))
        );
        let request = Job::cell("x").sessions([4]).group("g").into_request();
        assert_eq!(
            request.targets.and_then(|t| t.selector),
            Some(targets::Selector::SessionGroup("g".into()))
        );
    }
}
