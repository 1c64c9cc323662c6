//! The replay cache: each nonce once within the window, in bounded memory.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the replay cache refused a nonce.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Full {
    /// Seen within the window.
    Replayed,
    /// No room for another until some expire.
    AtCapacity,
}

/// Nonces seen within the window. Entries leave only when they expire, so nothing can push a
/// live nonce out early; when the cache is full, new calls are refused instead.
#[derive(Debug)]
pub(super) struct ReplayCache {
    seen: HashSet<Arc<str>>,
    by_expiry: VecDeque<(Instant, Arc<str>)>,
    capacity: usize,
    ttl: Duration,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            seen: HashSet::new(),
            by_expiry: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    pub(super) fn record(&mut self, nonce: &str, now: Instant) -> Result<(), Full> {
        while let Some((expiry, _)) = self.by_expiry.front() {
            if *expiry > now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(nonce) {
            return Err(Full::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Full::AtCapacity);
        }
        let nonce: Arc<str> = nonce.into();
        self.seen.insert(nonce.clone());
        self.by_expiry.push_back((now + self.ttl, nonce));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_is_bounded_and_never_evicts_live_entries() {
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut cache = ReplayCache::new(3, ttl);
        for nonce in ["a", "b", "c"] {
            assert_eq!(cache.record(nonce, start), Ok(()));
        }
        assert_eq!(cache.record("d", start), Err(Full::AtCapacity));
        assert_eq!(cache.len(), 3);
        // A refused call leaves every live nonce in place.
        assert_eq!(
            cache.record("a", start + Duration::from_secs(9)),
            Err(Full::Replayed)
        );
        // Once they expire, room frees up and old nonces are forgotten.
        assert_eq!(cache.record("d", start + ttl), Ok(()));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.record("a", start + ttl), Ok(()));
    }
}
