//! The replay cache: each nonce once for as long as its timestamp could pass, in bounded memory.
//!
//! A nonce is kept until the hub's wall clock passes `ts + window`, the moment its timestamp
//! stops passing the window check, and not a second less. Expiry goes by the same wall clock
//! that the window check uses (never a monotonic clock beside it), so a clock that steps back
//! only keeps nonces longer; one that steps forward forgets only nonces whose timestamps no
//! longer pass. Entries are ordered by expiry in a `BTreeSet`, since a later call may carry an
//! earlier timestamp.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Why the replay cache refused a nonce.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Full {
    /// Seen while its timestamp could still pass.
    Replayed,
    /// No room for another until some expire.
    AtCapacity,
}

/// Nonces whose timestamps could still pass. Entries leave only when they expire, so nothing
/// can push a live nonce out early; when the cache is full, new calls are refused instead.
#[derive(Debug)]
pub(super) struct ReplayCache {
    /// Each nonce and the Unix second after which it is forgotten.
    seen: HashMap<Arc<str>, i64>,
    by_expiry: BTreeSet<(i64, Arc<str>)>,
    capacity: usize,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    /// Records `nonce`, to be remembered while the wall clock is at most `last_valid` (Unix
    /// seconds); `now` is the wall clock.
    pub(super) fn record(&mut self, nonce: &str, last_valid: i64, now: i64) -> Result<(), Full> {
        while let Some((expiry, _)) = self.by_expiry.first() {
            if *expiry >= now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(nonce) {
            return Err(Full::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Full::AtCapacity);
        }
        let nonce: Arc<str> = nonce.into();
        self.seen.insert(nonce.clone(), last_valid);
        self.by_expiry.insert((last_valid, nonce));
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
        let start = 1_000;
        let mut cache = ReplayCache::new(3);
        for nonce in ["a", "b", "c"] {
            assert_eq!(cache.record(nonce, start + 10, start), Ok(()));
        }
        assert_eq!(cache.record("d", start + 10, start), Err(Full::AtCapacity));
        assert_eq!(cache.len(), 3);
        // A refused call leaves every live nonce in place, up to and including the last second.
        assert_eq!(
            cache.record("a", start + 20, start + 10),
            Err(Full::Replayed)
        );
        // Once they expire, room frees up and old nonces are forgotten.
        assert_eq!(cache.record("d", start + 30, start + 11), Ok(()));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.record("a", start + 30, start + 11), Ok(()));
    }

    #[test]
    fn expiries_out_of_order_are_kept_each_for_its_own_time() {
        let mut cache = ReplayCache::new(10);
        assert_eq!(cache.record("late", 500, 100), Ok(()));
        assert_eq!(cache.record("early", 200, 100), Ok(()));
        // At 300 the earlier one has gone; the later one, recorded first, has not.
        assert_eq!(cache.record("early", 400, 300), Ok(()));
        assert_eq!(cache.record("late", 900, 300), Err(Full::Replayed));
        assert_eq!(cache.record("late", 900, 501), Ok(()));
    }
}
