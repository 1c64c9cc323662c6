//! The hub's side: parsing a signature header, checking its MAC, its clock and its nonce.

use hmac::Mac;
use std::sync::Mutex;
use std::time::Duration;

use super::replay::{Full, ReplayCache};
use super::text::decode_sig_hex;
use super::{HmacSha256, Key, SCHEME, mac_canonical, unix_seconds};

/// How much of a bad field a refusal quotes: enough to recognise it, never enough to make the
/// message or a log line large.
const QUOTE_CHARS: usize = 32;

/// Why the hub refused a call's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `authorization` entry.
    #[error(
        "missing signature: every call needs an `authorization: {SCHEME} ...` metadata entry; make one with `warren sign METHOD`"
    )]
    Missing,
    /// The entry is not exactly in the scheme's form.
    #[error(
        "malformed signature: {0}; the form is exactly `{SCHEME} ts=<unix seconds>,nonce=<16-64 of [A-Za-z0-9_-]>,sig=<64 lowercase hex>`"
    )]
    Malformed(String),
    /// The MAC does not match: wrong key, other hub, other method, or altered fields.
    #[error(
        "bad signature: it does not match this hub's key and id for this method (wrong key, a signature made for another hub or an earlier start of this one, another method, or altered fields)"
    )]
    BadSignature,
    /// The timestamp is older than the skew window.
    #[error("stale signature: ts={ts} is {} s behind the hub's clock (hub time {hub_time}, window {window} s); sign each call afresh and check this machine's clock", hub_time.saturating_sub(*ts))]
    Stale {
        /// The call's timestamp.
        ts: i64,
        /// The hub's clock.
        hub_time: i64,
        /// The window, in seconds.
        window: u64,
    },
    /// The timestamp is ahead of the skew window.
    #[error("future signature: ts={ts} is {} s ahead of the hub's clock (hub time {hub_time}, window {window} s); check this machine's clock", ts.saturating_sub(*hub_time))]
    Future {
        /// The call's timestamp.
        ts: i64,
        /// The hub's clock.
        hub_time: i64,
        /// The window, in seconds.
        window: u64,
    },
    /// The nonce was already used while its timestamp could pass.
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

/// A short, printable quotation of outside text for messages and logs: at most
/// `QUOTE_CHARS` characters, escaped, saying how long the whole was when cut.
pub fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(QUOTE_CHARS).collect();
    shown = shown.escape_debug().to_string();
    if text.chars().nth(QUOTE_CHARS).is_some() {
        format!("`{shown}`... ({} bytes)", text.len())
    } else {
        format!("`{shown}`")
    }
}

/// The fields of a signature header.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The timestamp, Unix seconds.
    pub ts: i64,
    /// The timestamp exactly as written, which is what the MAC covers.
    pub ts_text: &'a str,
    /// The caller's nonce.
    pub nonce: &'a str,
    /// The MAC.
    pub sig: [u8; 32],
}

fn malformed(why: String) -> Refusal {
    Refusal::Malformed(why)
}

/// Whether `text` is a number in plain decimal: digits only, no sign, no leading zero.
fn canonical_decimal(text: &str) -> Option<i64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if digits && !leading_zero {
        text.parse().ok()
    } else {
        None
    }
}

impl<'a> Credentials<'a> {
    /// Parses exactly `Warren-HMAC-SHA256 ts=<decimal>,nonce=<nonce>,sig=<hex>`: one space after
    /// the scheme, the three fields in this order, no other white space, `ts` in plain decimal
    /// and `sig` in lowercase hex. Anything else is malformed.
    pub fn parse(value: &'a str) -> Result<Self, Refusal> {
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| {
                malformed(format!(
                    "it does not start with `{SCHEME} ` (the scheme and one space): {}",
                    quote(value)
                ))
            })?;
        let rest = rest.strip_prefix("ts=").ok_or_else(|| {
            malformed(format!(
                "`ts=` must follow the scheme's one space, not {}",
                quote(rest)
            ))
        })?;
        // Neither a timestamp nor a nonce holds a comma, so each field ends at the next one.
        let (ts_text, rest) = rest
            .split_once(',')
            .and_then(|(ts, rest)| Some((ts, rest.strip_prefix("nonce=")?)))
            .ok_or_else(|| {
                malformed("`,nonce=` must follow the timestamp, with no white space".to_owned())
            })?;
        let ts = canonical_decimal(ts_text).ok_or_else(|| {
            malformed(format!(
                "ts must be Unix seconds in plain decimal (digits only, no sign, no leading zero), not {}",
                quote(ts_text)
            ))
        })?;
        let (nonce, sig) = rest
            .split_once(',')
            .and_then(|(nonce, rest)| Some((nonce, rest.strip_prefix("sig=")?)))
            .ok_or_else(|| {
                malformed("`,sig=` must follow the nonce, with no white space".to_owned())
            })?;
        let nonce_ok = (16..=64).contains(&nonce.len())
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !nonce_ok {
            return Err(malformed(format!(
                "nonce must be 16 to 64 characters of [A-Za-z0-9_-], not {}",
                quote(nonce)
            )));
        }
        let sig_bytes = decode_sig_hex(sig.as_bytes()).ok_or_else(|| {
            malformed(format!(
                "sig must be 64 lowercase hex digits and end the entry, not {}",
                quote(sig)
            ))
        })?;
        Ok(Self {
            ts,
            ts_text,
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
            replay: Mutex::new(ReplayCache::new(replay_capacity)),
        }
    }

    /// The hub id signatures must be made for.
    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    /// Verifies the header (if any) of a call to `method`, recording its nonce on success.
    pub fn verify(&self, method: &str, header: Option<&[u8]>) -> Result<(), Refusal> {
        self.verify_at(method, header, unix_seconds())
    }

    /// [`Verifier::verify`] with the hub's wall clock at `now` (Unix seconds).
    pub fn verify_at(&self, method: &str, header: Option<&[u8]>, now: i64) -> Result<(), Refusal> {
        let value = header.ok_or(Refusal::Missing)?;
        let value =
            std::str::from_utf8(value).map_err(|_| malformed("it is not UTF-8 text".to_owned()))?;
        let creds = Credentials::parse(value)?;

        let mut mac = self.mac.clone();
        mac_canonical(
            &mut mac,
            self.hub_id.as_bytes(),
            method.as_bytes(),
            creds.ts_text.as_bytes(),
            creds.nonce.as_bytes(),
        );
        // verify_slice compares in constant time.
        mac.verify_slice(&creds.sig)
            .map_err(|_| Refusal::BadSignature)?;

        let window = self.skew.as_secs();
        let window_i = i64::try_from(window).unwrap_or(i64::MAX);
        if creds.ts < now.saturating_sub(window_i) {
            return Err(Refusal::Stale {
                ts: creds.ts,
                hub_time: now,
                window,
            });
        }
        if creds.ts > now.saturating_add(window_i) {
            return Err(Refusal::Future {
                ts: creds.ts,
                hub_time: now,
                window,
            });
        }
        // The timestamp passes while the clock is at most ts + window: remember it that long.
        let last_valid = creds.ts.saturating_add(window_i);
        let recorded = self
            .replay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(creds.nonce, last_valid, now);
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
        let n = "aaaaaaaaaaaaaaaa";
        for bad in [
            String::new(),
            SCHEME.to_string(),
            format!("{SCHEME} ts=1,nonce={n}"),
            format!("{SCHEME} ts=x,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=1,nonce=short,sig={sig}"),
            format!("{SCHEME} ts=1,nonce=aaaaaaaa aaaaaaaa,sig={sig}"),
            format!("{SCHEME} ts=1,nonce={n},sig=abc"),
            format!("{SCHEME} ts=1,ts=2,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=1,nonce={n},sig={sig},extra=1"),
            // White space anywhere but the one space after the scheme.
            format!("{SCHEME}  ts=1,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=1, nonce={n},sig={sig}"),
            format!("{SCHEME} ts=1 ,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=1,nonce={n},\tsig={sig}"),
            format!("{SCHEME} ts=1,nonce={n},sig={sig} "),
            format!(" {SCHEME} ts=1,nonce={n},sig={sig}"),
            format!("{SCHEME}\tts=1,nonce={n},sig={sig}"),
            // Fields out of order.
            format!("{SCHEME} nonce={n},ts=1,sig={sig}"),
            format!("{SCHEME} sig={sig},nonce={n},ts=1"),
            // Timestamps that are not plain decimal.
            format!("{SCHEME} ts=01,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=+1,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=-5,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=,nonce={n},sig={sig}"),
            format!("{SCHEME} ts=99999999999999999999,nonce={n},sig={sig}"),
            // Upper-case hex.
            format!("{SCHEME} ts=1,nonce={n},sig={}", "AB".repeat(32)),
        ] {
            assert!(
                matches!(Credentials::parse(&bad), Err(Refusal::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        let good = format!("{SCHEME} ts=0,nonce={n},sig={sig}");
        let creds = Credentials::parse(&good).expect("the documented form");
        assert_eq!((creds.ts, creds.ts_text, creds.nonce), (0, "0", n));
    }

    #[test]
    fn a_refusal_quotes_at_most_a_few_dozen_characters() {
        let huge = "x".repeat(10 << 10);
        for value in [
            huge.clone(),
            format!("{SCHEME} {huge}"),
            format!("{SCHEME} ts={huge},nonce=aaaaaaaaaaaaaaaa,sig=00"),
            format!("{SCHEME} ts=1,nonce={huge},sig=00"),
            format!("{SCHEME} ts=1,nonce=aaaaaaaaaaaaaaaa,sig={huge}"),
        ] {
            let refusal = Credentials::parse(&value).expect_err("malformed");
            let message = refusal.to_string();
            assert!(message.len() < 400, "{} bytes: {message}", message.len());
        }
        assert_eq!(quote("a\nb"), "`a\\nb`");
        assert!(quote(&huge).ends_with("... (10240 bytes)"));
    }
}
