//! The replay cache: each nonce once for as long as its timestamp could pass, in bounded memory.
//!
//! A nonce is kept until the hub's wall clock passes `ts + window`, the moment its timestamp
//! stops passing the window check, and not a second less. Expiry goes by the same wall clock
//! that the window check uses (never a monotonic clock beside it), so a clock that steps back
//! only keeps nonces longer; one that steps forward forgets only nonces whose timestamps no
//! longer pass.
//!
//! Every signed call records a nonce, so this is on the hot path. A nonce is kept as a 64-bit
//! hash keyed with a secret made when the cache is (SipHash, the standard library's
//! `RandomState`): eight bytes a call instead of up to 64, in a set for the lookup and in
//! buckets by expiry second for forgetting them, so a full cache of the default 262,144 nonces
//! takes about 7 MiB instead of about 50, and a call touches fewer cache lines. Two nonces that
//! share a hash make the second call refused as a replay, never a replay accepted: with the
//! default 262,144 held, a call's chance of that is below 2^-46, under a key only the hub
//! knows, and only calls whose MAC already passed reach the cache. Since a timestamp passes only
//! within the window either way of the clock, the live buckets are at most `2 × window + 1`
//! seconds apart: finding a call's bucket and dropping the expired ones are a few steps each,
//! where a structure ordered by (expiry, nonce) paid a tree insert and an allocation per call.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;

/// The longest nonce the scheme allows.
const MAX_NONCE: usize = 64;

/// Why the replay cache refused a nonce.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Full {
    /// Seen while its timestamp could still pass.
    Replayed,
    /// No room for another until some expire.
    AtCapacity,
}

/// Nonces whose timestamps could still pass, by their keyed hashes. Entries leave only when
/// they expire, so nothing can push a live nonce out early; when the cache is full, new calls
/// are refused instead.
#[derive(Debug)]
pub(super) struct ReplayCache {
    /// Every nonce remembered.
    seen: HashSet<u64>,
    /// The same nonces by the Unix second after which each is forgotten.
    by_expiry: BTreeMap<i64, Vec<u64>>,
    /// The secret key of the nonces' hashes.
    keyed: RandomState,
    capacity: usize,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            by_expiry: BTreeMap::new(),
            keyed: RandomState::new(),
            capacity,
        }
    }

    /// Records `nonce`, to be remembered while the wall clock is at most `last_valid` (Unix
    /// seconds); `now` is the wall clock.
    pub(super) fn record(&mut self, nonce: &str, last_valid: i64, now: i64) -> Result<(), Full> {
        self.forget_expired(now);
        // Longer than the parser lets through; never remembered, so never accepted.
        if nonce.len() > MAX_NONCE {
            return Err(Full::Replayed);
        }
        let nonce = self.keyed.hash_one(nonce.as_bytes());
        if self.seen.len() >= self.capacity {
            return Err(if self.seen.contains(&nonce) {
                Full::Replayed
            } else {
                Full::AtCapacity
            });
        }
        // One look-up: the insert says whether it was there.
        if !self.seen.insert(nonce) {
            return Err(Full::Replayed);
        }
        self.by_expiry.entry(last_valid).or_default().push(nonce);
        Ok(())
    }

    /// Drops the buckets whose second has passed.
    fn forget_expired(&mut self, now: i64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for old in entry.remove() {
                self.seen.remove(&old);
            }
        }
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

    #[test]
    fn many_nonces_in_one_second_share_a_bucket_and_leave_together() {
        let mut cache = ReplayCache::new(1000);
        let names: Vec<String> = (0..500).map(|i| format!("nonce-{i:011}")).collect();
        for name in &names {
            assert_eq!(cache.record(name, 160, 100), Ok(()));
        }
        assert_eq!(cache.by_expiry.len(), 1);
        assert_eq!(cache.record(&names[7], 170, 160), Err(Full::Replayed));
        assert_eq!(cache.record("other-nonce-000000", 220, 161), Ok(()));
        assert_eq!((cache.len(), cache.by_expiry.len()), (1, 1));
        assert_eq!(cache.record(&names[7], 221, 161), Ok(()));
    }

    #[test]
    fn nonces_differing_only_in_length_or_last_byte_are_distinct() {
        let mut cache = ReplayCache::new(10);
        let long = "x".repeat(MAX_NONCE);
        for nonce in ["abc", "abc\0", "abd", &long] {
            assert_eq!(cache.record(nonce, 10, 1), Ok(()), "{nonce:?}");
        }
        assert_eq!(cache.record(&long, 10, 1), Err(Full::Replayed));
        // Longer than any nonce the parser lets through: never accepted.
        let longer = "x".repeat(MAX_NONCE + 1);
        assert_eq!(cache.record(&longer, 10, 1), Err(Full::Replayed));
    }
}
