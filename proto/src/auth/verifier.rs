//! The hub's side: parsing a signature header, checking its MAC, its clock and its nonce.

use hmac::Mac;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::replay::{Full, ReplayCache};
use super::{HmacSha256, Key, SCHEME, mac_canonical, unix_seconds};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
