//! The caller's side: a signature header per call.

use hmac::Mac;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{HmacSha256, Key, SCHEME, mac_canonical, unix_seconds};

/// Makes signature headers for one hub. Cheap to clone; clones share the clock correction.
#[derive(Clone, Debug)]
pub struct Signer {
    mac: HmacSha256,
    hub_id: Arc<str>,
    /// Seconds to add to the local clock to get the hub's, learned from refusals.
    clock_offset: Arc<AtomicI64>,
    /// 64 random bits, so that no two signers' nonces meet.
    nonce_prefix: Arc<str>,
    /// Nonces made so far, shared by clones.
    nonces: Arc<AtomicU64>,
}

impl Signer {
    /// A signer for the hub with this id and key.
    pub fn new(key: &Key, hub_id: &str) -> Self {
        let mut raw = [0u8; 8];
        if getrandom::fill(&mut raw).is_err() {
            raw.copy_from_slice(&rand_fallback()[..8]);
        }
        Self {
            mac: key.mac(),
            hub_id: hub_id.into(),
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
        let mut mac = self.mac.clone();
        mac_canonical(&mut mac, &self.hub_id, method, ts, nonce);
        let sig = hex::encode(mac.finalize().into_bytes());
        format!("{SCHEME} ts={ts},nonce={nonce},sig={sig}")
    }

    /// Corrects the clock from the hub's time as reported in a refusal.
    pub fn learn_hub_time(&self, hub_time: i64) {
        self.clock_offset
            .store(hub_time - unix_seconds(), Ordering::Relaxed);
    }

    /// The hub id this signer signs for.
    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }
}

fn rand_fallback() -> [u8; 16] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes()
}
