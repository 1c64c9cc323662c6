//! The caller's side: a signature header per call.

use hmac::Mac;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{HmacSha256, Key, SCHEME, is_hub_id, mac_canonical, unix_seconds};

/// Makes signature headers for one hub. Cheap to clone; clones share the clock correction and
/// the hub id, both of which the hub may teach them (a hub has a new id at every start).
#[derive(Clone, Debug)]
pub struct Signer {
    mac: HmacSha256,
    /// The id of the hub's current start, learned from refusals.
    hub_id: Arc<RwLock<Arc<str>>>,
    /// Seconds to add to the local clock to get the hub's, learned from refusals.
    clock_offset: Arc<AtomicI64>,
    /// 64 random bits, so that no two signers' nonces meet.
    nonce_prefix: Arc<str>,
    /// Nonces made so far, shared by clones.
    nonces: Arc<AtomicU64>,
}

impl Signer {
    /// A signer for the hub with this id and key (an empty id if it is not known yet: the
    /// first call is then refused, naming the id, and [`Signer::learn_hub_id`] takes it).
    pub fn new(key: &Key, hub_id: &str) -> Self {
        let mut raw = [0u8; 8];
        if getrandom::fill(&mut raw).is_err() {
            raw.copy_from_slice(&rand_fallback()[..8]);
        }
        Self {
            mac: key.mac(),
            hub_id: Arc::new(RwLock::new(hub_id.into())),
            clock_offset: Arc::default(),
            nonce_prefix: hex::encode(raw).into(),
            nonces: Arc::default(),
        }
    }

    /// The header value for one call of `method`, with a fresh timestamp and nonce.
    pub fn sign(&self, method: &str) -> String {
        let ts = unix_seconds() + self.clock_offset.load(Ordering::Relaxed);
        // Unique, which is all a nonce must be: a random prefix per signer, then a count.
        let count = self.nonces.fetch_add(1, Ordering::Relaxed);
        let nonce = format!("{}{count:x}", self.nonce_prefix);
        self.sign_with(method, ts, &nonce)
    }

    /// The header value for `method` with a given timestamp and nonce.
    pub fn sign_with(&self, method: &str, ts: i64, nonce: &str) -> String {
        let hub_id = self.hub_id();
        let ts = ts.to_string();
        let mut mac = self.mac.clone();
        mac_canonical(&mut mac, &hub_id, method, &ts, nonce);
        let sig = hex::encode(mac.finalize().into_bytes());
        format!("{SCHEME} ts={ts},nonce={nonce},sig={sig}")
    }

    /// Corrects the clock from the hub's time as reported in a refusal.
    pub fn learn_hub_time(&self, hub_time: i64) {
        self.clock_offset
            .store(hub_time - unix_seconds(), Ordering::Relaxed);
    }

    /// Takes the hub id a refusal named; true if it is new (worth signing the call again).
    /// Text that can't be a hub id is ignored.
    pub fn learn_hub_id(&self, hub_id: &str) -> bool {
        if !is_hub_id(hub_id) {
            return false;
        }
        let mut current = self.hub_id.write().unwrap_or_else(|p| p.into_inner());
        if &**current == hub_id {
            return false;
        }
        *current = hub_id.into();
        true
    }

    /// The hub id this signer signs for.
    pub fn hub_id(&self) -> Arc<str> {
        self.hub_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn rand_fallback() -> [u8; 16] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes()
}
