//! HMAC-SHA256 call signing: the one implementation the hub, the engines and the SDK share.
//!
//! Every call carries one metadata entry:
//!
//! ```text
//! authorization: Warren-HMAC-SHA256 ts=<unix seconds>,nonce=<16-64 chars of [A-Za-z0-9_-]>,sig=<64 hex digits>
//! ```
//!
//! where `sig` is HMAC-SHA256, under the hub's 32-byte key, of the canonical string
//!
//! ```text
//! warren-hmac-v1 \n <hub id> \n <gRPC method path> \n <ts> \n <nonce>
//! ```
//!
//! (no spaces; `\n` is one newline byte). The hub id makes a signature for one hub worthless
//! at another; the method path makes it worthless for any other call. The hub accepts a
//! timestamp within a skew window either way of its own clock and each nonce once.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::private_file::{self, PrivateFileError};

/// The metadata key that carries the signature.
pub const HEADER: &str = "authorization";
/// The scheme word that starts the header value.
pub const SCHEME: &str = "Warren-HMAC-SHA256";
/// The first line of the canonical string; changes if the scheme ever does.
pub const CANONICAL_VERSION: &str = "warren-hmac-v1";
/// Trailing metadata on a stale or future refusal: the hub's clock, in Unix seconds.
pub const HUB_TIME_HEADER: &str = "warren-hub-time";
/// How far a timestamp may be from the hub's clock, either way, by default.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// How many nonces the hub remembers at most, by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 262_144;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file failed the private-file checks or could not be read.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The key text is not 64 hex digits.
    #[error(
        "{0}: a warren key is 64 hex digits (32 bytes); make one with `warren-hub --new-key-file PATH`"
    )]
    Malformed(String),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A 32-byte secret shared by the hub and everyone allowed to call it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Parses 64 hex digits (surrounding white space is ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| KeyError::Malformed(origin.to_owned()))?;
        Ok(Self(bytes))
    }

    /// Reads a key file: hex text in a file of mode 0600 owned by the current user.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = private_file::read(path)?;
        Self::from_hex(&text, &path.display().to_string())
    }

    /// Writes the key as hex to a new file of mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        private_file::write(path, format!("{}\n", self.to_hex()).as_bytes())?;
        Ok(())
    }

    /// The key as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The hub id used with this key when none is given: a digest of the key, so anyone who
    /// holds the key file can name the hub. Hubs that share a key should each get `--hub-id`.
    pub fn default_hub_id(&self) -> String {
        use sha2::Digest;
        let digest = Sha256::new()
            .chain_update(b"warren-hub-id-v1\n")
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..8])
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

/// The text that is signed for one call.
pub fn canonical_string(hub_id: &str, method: &str, ts: i64, nonce: &str) -> String {
    format!("{CANONICAL_VERSION}\n{hub_id}\n{method}\n{ts}\n{nonce}")
}

/// Feeds [`canonical_string`] to a MAC piece by piece.
fn mac_canonical(mac: &mut HmacSha256, hub_id: &str, method: &str, ts: i64, nonce: &str) {
    let ts = ts.to_string();
    mac.update(CANONICAL_VERSION.as_bytes());
    for part in [hub_id, method, &ts, nonce] {
        mac.update(b"\n");
        mac.update(part.as_bytes());
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

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

/// Why the hub refused a call's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `authorization` entry.
    #[error(
        "missing signature: every call needs an `authorization: {SCHEME} ...` metadata entry; make one with `warren sign METHOD`"
    )]
    Missing,
    /// The entry is not in the scheme's form.
    #[error(
        "malformed signature: {0}; the form is `{SCHEME} ts=<unix seconds>,nonce=<random>,sig=<hex>`"
    )]
    Malformed(String),
    /// The MAC does not match: wrong key, other hub, other method, or altered fields.
    #[error(
        "bad signature: it does not match this hub's key for this method (wrong key, a signature made for another hub or method, or altered fields)"
    )]
    BadSignature,
    /// The timestamp is older than the skew window.
    #[error("stale signature: ts={ts} is {} s behind the hub's clock (hub time {hub_time}, window {window} s); sign each call afresh and check this machine's clock", hub_time - ts)]
    Stale {
        /// The call's timestamp.
        ts: i64,
        /// The hub's clock.
        hub_time: i64,
        /// The window, in seconds.
        window: u64,
    },
    /// The timestamp is ahead of the skew window.
    #[error("future signature: ts={ts} is {} s ahead of the hub's clock (hub time {hub_time}, window {window} s); check this machine's clock", ts - hub_time)]
    Future {
        /// The call's timestamp.
        ts: i64,
        /// The hub's clock.
        hub_time: i64,
        /// The window, in seconds.
        window: u64,
    },
    /// The nonce was already used within the window.
    #[error("replayed signature: this nonce was already used; every call needs a fresh signature")]
    Replayed,
    /// Too many distinct signed calls within the window to remember them all.
    #[error(
        "too many signed calls within the {window} s window ({capacity} remembered); retry shortly"
    )]
    ReplayCacheFull {
        /// The window, in seconds.
        window: u64,
        /// How many nonces the hub remembers.
        capacity: usize,
    },
}

impl Refusal {
    /// The hub's clock, for refusals that carry it.
    pub fn hub_time(&self) -> Option<i64> {
        match self {
            Self::Stale { hub_time, .. } | Self::Future { hub_time, .. } => Some(*hub_time),
            _ => None,
        }
    }
}

/// The fields of a signature header.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The timestamp, Unix seconds.
    pub ts: i64,
    /// The caller's nonce.
    pub nonce: &'a str,
    /// The MAC.
    pub sig: [u8; 32],
}

impl<'a> Credentials<'a> {
    /// Parses `Warren-HMAC-SHA256 ts=..,nonce=..,sig=..` (fields in any order, each once).
    pub fn parse(value: &'a str) -> Result<Self, Refusal> {
        let malformed = |why: &str| Refusal::Malformed(why.to_owned());
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| malformed(&format!("it does not start with `{SCHEME} `")))?;
        let (mut ts, mut nonce, mut sig) = (None, None, None);
        for field in rest.split(',') {
            let (name, val) = field
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed(&format!("field `{}` has no `=`", field.trim())))?;
            let slot = match name {
                "ts" => &mut ts,
                "nonce" => &mut nonce,
                "sig" => &mut sig,
                other => return Err(malformed(&format!("unknown field `{other}`"))),
            };
            if slot.replace(val).is_some() {
                return Err(malformed(&format!("field `{name}` appears twice")));
            }
        }
        let ts = ts
            .ok_or_else(|| malformed("no ts field"))?
            .parse::<i64>()
            .map_err(|_| malformed("ts is not a whole number of seconds"))?;
        let nonce = nonce.ok_or_else(|| malformed("no nonce field"))?;
        if !(16..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(malformed(
                "nonce must be 16 to 64 characters of [A-Za-z0-9_-]",
            ));
        }
        let mut sig_bytes = [0u8; 32];
        hex::decode_to_slice(
            sig.ok_or_else(|| malformed("no sig field"))?,
            &mut sig_bytes,
        )
        .map_err(|_| malformed("sig must be 64 hex digits"))?;
        Ok(Self {
            ts,
            nonce,
            sig: sig_bytes,
        })
    }
}

/// Checks signatures on the hub: MAC, clock window, then the replay cache.
#[derive(Debug)]
pub struct Verifier {
    mac: HmacSha256,
    hub_id: String,
    skew: Duration,
    replay_capacity: usize,
    replay: Mutex<ReplayCache>,
}

impl Verifier {
    /// A verifier for this hub's key and id, with the given window and replay-cache bound.
    pub fn new(key: &Key, hub_id: &str, skew: Duration, replay_capacity: usize) -> Self {
        Self {
            mac: key.mac(),
            hub_id: hub_id.to_owned(),
            skew,
            replay_capacity,
            // A timestamp up to `skew` ahead stays acceptable until `2 * skew` from now.
            replay: Mutex::new(ReplayCache::new(replay_capacity, skew * 2)),
        }
    }

    /// Verifies the header (if any) of a call to `method`, recording its nonce on success.
    pub fn verify(&self, method: &str, header: Option<&[u8]>) -> Result<(), Refusal> {
        let value = header.ok_or(Refusal::Missing)?;
        let value = std::str::from_utf8(value)
            .map_err(|_| Refusal::Malformed("it is not text".to_owned()))?;
        let creds = Credentials::parse(value)?;

        let mut mac = self.mac.clone();
        mac_canonical(&mut mac, &self.hub_id, method, creds.ts, creds.nonce);
        // verify_slice compares in constant time.
        mac.verify_slice(&creds.sig)
            .map_err(|_| Refusal::BadSignature)?;

        let hub_time = unix_seconds();
        let window = self.skew.as_secs();
        if creds.ts < hub_time.saturating_sub(window as i64) {
            return Err(Refusal::Stale {
                ts: creds.ts,
                hub_time,
                window,
            });
        }
        if creds.ts > hub_time.saturating_add(window as i64) {
            return Err(Refusal::Future {
                ts: creds.ts,
                hub_time,
                window,
            });
        }
        let recorded = self
            .replay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(creds.nonce, Instant::now());
        recorded.map_err(|full| match full {
            Full::Replayed => Refusal::Replayed,
            Full::AtCapacity => Refusal::ReplayCacheFull {
                window,
                capacity: self.replay_capacity,
            },
        })
    }
}

/// Why the replay cache refused a nonce.
#[derive(Debug, PartialEq, Eq)]
enum Full {
    Replayed,
    AtCapacity,
}

/// Nonces seen within the window. Entries leave only when they expire, so nothing can push a
/// live nonce out early; when the cache is full, new calls are refused instead.
#[derive(Debug)]
struct ReplayCache {
    seen: HashSet<Arc<str>>,
    by_expiry: VecDeque<(Instant, Arc<str>)>,
    capacity: usize,
    ttl: Duration,
}

impl ReplayCache {
    fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            seen: HashSet::new(),
            by_expiry: VecDeque::new(),
            capacity,
            ttl,
        }
    }

    fn record(&mut self, nonce: &str, now: Instant) -> Result<(), Full> {
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

    const METHOD: &str = "/warren.v1.Control/ListEngines";

    fn key() -> Key {
        Key::from_hex(&"ab".repeat(32), "test").expect("key")
    }

    #[test]
    fn canonical_string_is_exactly_the_documented_form() {
        assert_eq!(
            canonical_string("hub1", METHOD, 1_700_000_000, "n0nce-n0nce-n0nce"),
            "warren-hmac-v1\nhub1\n/warren.v1.Control/ListEngines\n1700000000\nn0nce-n0nce-n0nce"
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac_sha256() {
        // Reference value computed with Python:
        // hmac.new(bytes.fromhex('ab'*32), b'warren-hmac-v1\nhub1\n/warren.v1.Control/ListEngines\n1700000000\n0123456789abcdef', 'sha256').hexdigest()
        let header =
            Signer::new(&key(), "hub1").sign_with(METHOD, 1_700_000_000, "0123456789abcdef");
        assert_eq!(
            header,
            "Warren-HMAC-SHA256 ts=1700000000,nonce=0123456789abcdef,sig=\
             f5b284d774c3615006d1b07a8cc8f69dd1859ccbdc08f782216eea75d3415928"
        );
    }

    #[test]
    fn a_fresh_signature_passes_once() {
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 16);
        let header = Signer::new(&key(), "hub1").sign(METHOD);
        assert_eq!(verifier.verify(METHOD, Some(header.as_bytes())), Ok(()));
        assert_eq!(
            verifier.verify(METHOD, Some(header.as_bytes())),
            Err(Refusal::Replayed)
        );
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 16);
        let signer = Signer::new(&key(), "hub1");
        assert_eq!(verifier.verify(METHOD, None), Err(Refusal::Missing));
        assert!(matches!(
            verifier.verify(METHOD, Some(b"Bearer xyz")),
            Err(Refusal::Malformed(_))
        ));
        let other_method = signer.sign("/warren.v1.Control/Shutdown");
        assert_eq!(
            verifier.verify(METHOD, Some(other_method.as_bytes())),
            Err(Refusal::BadSignature)
        );
        let other_hub = Signer::new(&key(), "hub2").sign(METHOD);
        assert_eq!(
            verifier.verify(METHOD, Some(other_hub.as_bytes())),
            Err(Refusal::BadSignature)
        );
        let other_key =
            Signer::new(&Key::from_hex(&"cd".repeat(32), "t").expect("key"), "hub1").sign(METHOD);
        assert_eq!(
            verifier.verify(METHOD, Some(other_key.as_bytes())),
            Err(Refusal::BadSignature)
        );
        let now = unix_seconds();
        let stale = signer.sign_with(METHOD, now - 120, "aaaaaaaaaaaaaaaa");
        let refusal = verifier
            .verify(METHOD, Some(stale.as_bytes()))
            .expect_err("stale");
        assert!(matches!(refusal, Refusal::Stale { .. }), "{refusal}");
        assert!(refusal.hub_time().is_some());
        let future = signer.sign_with(METHOD, now + 120, "bbbbbbbbbbbbbbbb");
        let refusal = verifier
            .verify(METHOD, Some(future.as_bytes()))
            .expect_err("future");
        assert!(matches!(refusal, Refusal::Future { .. }), "{refusal}");
    }

    #[test]
    fn parsing_rejects_each_malformation() {
        let sig = "00".repeat(32);
        for bad in [
            String::new(),
            SCHEME.to_string(),
            format!("{SCHEME} ts=1,nonce=aaaaaaaaaaaaaaaa"),
            format!("{SCHEME} ts=x,nonce=aaaaaaaaaaaaaaaa,sig={sig}"),
            format!("{SCHEME} ts=1,nonce=short,sig={sig}"),
            format!("{SCHEME} ts=1,nonce=aaaaaaaa aaaaaaaa,sig={sig}"),
            format!("{SCHEME} ts=1,nonce=aaaaaaaaaaaaaaaa,sig=abc"),
            format!("{SCHEME} ts=1,ts=2,nonce=aaaaaaaaaaaaaaaa,sig={sig}"),
            format!("{SCHEME} ts=1,nonce=aaaaaaaaaaaaaaaa,sig={sig},extra=1"),
        ] {
            assert!(
                matches!(Credentials::parse(&bad), Err(Refusal::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        let good = format!("{SCHEME} sig={sig}, nonce=aaaaaaaaaaaaaaaa, ts=-5");
        let creds = Credentials::parse(&good).expect("fields in any order");
        assert_eq!(creds.ts, -5);
        assert_eq!(creds.nonce, "aaaaaaaaaaaaaaaa");
    }

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

    #[test]
    fn forged_calls_never_touch_the_replay_cache() {
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 2);
        let forger = Signer::new(&Key::from_hex(&"cd".repeat(32), "t").expect("key"), "hub1");
        for _ in 0..100 {
            let forged = forger.sign(METHOD);
            assert_eq!(
                verifier.verify(METHOD, Some(forged.as_bytes())),
                Err(Refusal::BadSignature)
            );
        }
        let signer = Signer::new(&key(), "hub1");
        assert_eq!(
            verifier.verify(METHOD, Some(signer.sign(METHOD).as_bytes())),
            Ok(())
        );
        assert_eq!(
            verifier.verify(METHOD, Some(signer.sign(METHOD).as_bytes())),
            Ok(())
        );
        assert!(matches!(
            verifier.verify(METHOD, Some(signer.sign(METHOD).as_bytes())),
            Err(Refusal::ReplayCacheFull { capacity: 2, .. })
        ));
    }
}
