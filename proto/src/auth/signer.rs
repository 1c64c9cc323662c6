//! The caller's side: a signature header per call.

use hmac::Mac;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::text::{HeaderText, decimal, hex_u64};
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
    /// 64 random bits in hex, so that no two signers' nonces meet.
    nonce_prefix: [u8; 16],
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
        let mut nonce_prefix = [0u8; 16];
        // Cannot fail: 8 bytes are exactly 16 hex digits.
        let _ = hex::encode_to_slice(raw, &mut nonce_prefix);
        Self {
            mac: key.mac(),
            hub_id: Arc::new(RwLock::new(hub_id.into())),
            clock_offset: Arc::default(),
            nonce_prefix,
            nonces: Arc::default(),
        }
    }

    /// The header value for one call of `method`, with a fresh timestamp and nonce.
    pub fn sign(&self, method: &str) -> String {
        self.fresh(method).into_string()
    }

    /// [`Signer::sign`] as a metadata value, marked sensitive: what a channel puts on a call.
    pub fn header_value(&self, method: &str) -> Option<http::HeaderValue> {
        let mut value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(
            self.fresh(method).into_bytes(),
        ))
        .ok()?;
        // Never indexed by HPACK: it changes with every call, so a table entry would only
        // churn both sides' tables (and it is a credential).
        value.set_sensitive(true);
        Some(value)
    }

    /// The header value for `method` with a given timestamp and nonce.
    pub fn sign_with(&self, method: &str, ts: i64, nonce: &str) -> String {
        self.write(method, ts, nonce.as_bytes()).into_string()
    }

    /// A header with a fresh timestamp and nonce.
    fn fresh(&self, method: &str) -> HeaderText {
        let ts = unix_seconds() + self.clock_offset.load(Ordering::Relaxed);
        // Unique, which is all a nonce must be: a random prefix per signer, then a count.
        let count = self.nonces.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 32];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        let mut digits = [0u8; 16];
        let digits = hex_u64(count, &mut digits);
        nonce[16..16 + digits.len()].copy_from_slice(digits);
        self.write(method, ts, &nonce[..16 + digits.len()])
    }

    /// The header for `method` with this timestamp and nonce: one MAC (from the keyed state
    /// made once) and one buffer, no formatting machinery.
    fn write(&self, method: &str, ts: i64, nonce: &[u8]) -> HeaderText {
        let mut ts_digits = [0u8; 20];
        let ts = decimal(ts, &mut ts_digits);
        let mut mac = self.mac.clone();
        {
            let hub_id = self.hub_id.read().unwrap_or_else(|p| p.into_inner());
            mac_canonical(&mut mac, hub_id.as_bytes(), method.as_bytes(), ts, nonce);
        }
        let sig = mac.finalize().into_bytes();
        let mut text = HeaderText::new();
        text.push(SCHEME.as_bytes());
        text.push(b" ts=");
        text.push(ts);
        text.push(b",nonce=");
        text.push(nonce);
        text.push(b",sig=");
        text.push_hex(&sig);
        text
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
