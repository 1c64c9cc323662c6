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
//! (no spaces; `\n` is one newline byte; `<ts>` is the header's decimal text). The hub id is
//! new at every start of a hub, so a signature is worthless at another hub and after a restart;
//! the method path makes it worthless for any other call. The hub accepts a timestamp within a
//! skew window either way of its own clock and each nonce once, and names its id in a refusal
//! (`warren-hub-id`) so that signers holding the key can follow it across restarts.

mod key;
mod replay;
mod signer;
mod text;
mod verifier;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use key::{Key, KeyError};
pub use signer::Signer;
pub use verifier::{Credentials, Refusal, Verifier, quote};

/// The metadata key that carries the signature.
pub const HEADER: &str = "authorization";
/// The scheme word that starts the header value.
pub const SCHEME: &str = "Warren-HMAC-SHA256";
/// The first line of the canonical string; changes if the scheme ever does.
pub const CANONICAL_VERSION: &str = "warren-hmac-v1";
/// Trailing metadata on a stale or future refusal: the hub's clock, in Unix seconds.
pub const HUB_TIME_HEADER: &str = "warren-hub-time";
/// Trailing metadata on a bad-signature refusal: the id of the hub's current start.
pub const HUB_ID_HEADER: &str = "warren-hub-id";
/// How far a timestamp may be from the hub's clock, either way, by default.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// How many nonces the hub remembers at most, by default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 262_144;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The text that is signed for one call.
pub fn canonical_string(hub_id: &str, method: &str, ts: i64, nonce: &str) -> String {
    format!("{CANONICAL_VERSION}\n{hub_id}\n{method}\n{ts}\n{nonce}")
}

/// A new hub id, for one start of a hub: 16 random hex digits.
pub fn new_hub_id() -> Result<String, KeyError> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex::encode(raw))
}

/// Whether `text` can be a hub id: 1 to 64 characters of `[A-Za-z0-9._-]` (so it can't
/// change the canonical string's lines).
pub fn is_hub_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Feeds [`canonical_string`] to a MAC piece by piece; `ts` is the header's decimal text.
fn mac_canonical(mac: &mut HmacSha256, hub_id: &[u8], method: &[u8], ts: &[u8], nonce: &[u8]) {
    mac.update(CANONICAL_VERSION.as_bytes());
    for part in [hub_id, method, ts, nonce] {
        mac.update(b"\n");
        mac.update(part);
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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

    #[test]
    fn a_nonce_is_remembered_as_long_as_its_timestamp_passes() {
        let window = DEFAULT_SKEW.as_secs() as i64;
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 16);
        let signer = Signer::new(&key(), "hub1");
        let now = 1_700_000_000;
        // The furthest future a timestamp may have: it passes until the clock reaches ts + window.
        let ahead = signer.sign_with(METHOD, now + window, "aheadaheadahead00");
        assert_eq!(
            verifier.verify_at(METHOD, Some(ahead.as_bytes()), now),
            Ok(())
        );
        for later in [now + 1, now + window, now + 2 * window] {
            assert_eq!(
                verifier.verify_at(METHOD, Some(ahead.as_bytes()), later),
                Err(Refusal::Replayed),
                "{} s later",
                later - now
            );
        }
        // One second past the edge, the timestamp itself refuses it.
        assert!(matches!(
            verifier.verify_at(METHOD, Some(ahead.as_bytes()), now + 2 * window + 1),
            Err(Refusal::Stale { .. })
        ));
    }

    #[test]
    fn a_wall_clock_that_steps_back_does_not_reopen_a_nonce() {
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 16);
        let signer = Signer::new(&key(), "hub1");
        let now = 1_700_000_000;
        let header = signer.sign_with(METHOD, now, "steppedsteppedst");
        assert_eq!(
            verifier.verify_at(METHOD, Some(header.as_bytes()), now),
            Ok(())
        );
        // Much later by the monotonic clock, but the wall clock went back 5 s.
        for then in [now - 5, now + 55, now + 60] {
            assert_eq!(
                verifier.verify_at(METHOD, Some(header.as_bytes()), then),
                Err(Refusal::Replayed)
            );
        }
    }

    #[test]
    fn the_mac_covers_the_timestamp_text_and_padded_forms_are_refused() {
        let verifier = Verifier::new(&key(), "hub1", DEFAULT_SKEW, 16);
        let signer = Signer::new(&key(), "hub1");
        let now = unix_seconds();
        let header = signer.sign_with(METHOD, now, "paddedpaddedpadd");
        for padded in [format!("ts=0{now}"), format!("ts=+{now}")] {
            let forged = header.replacen(&format!("ts={now}"), &padded, 1);
            assert!(
                matches!(
                    verifier.verify(METHOD, Some(forged.as_bytes())),
                    Err(Refusal::Malformed(_))
                ),
                "{forged}"
            );
        }
        assert_eq!(verifier.verify(METHOD, Some(header.as_bytes())), Ok(()));
    }

    #[test]
    fn a_signer_learns_a_new_hub_id_once_and_ignores_junk() {
        let signer = Signer::new(&key(), "");
        assert!(signer.learn_hub_id("3f9a0c1d2e4b5a69"));
        assert!(!signer.learn_hub_id("3f9a0c1d2e4b5a69"), "not new");
        for junk in ["", "a\nb", "with space", &"x".repeat(65)] {
            assert!(!signer.learn_hub_id(junk), "{junk:?}");
        }
        let verifier = Verifier::new(&key(), "3f9a0c1d2e4b5a69", DEFAULT_SKEW, 16);
        let clone = signer.clone();
        assert_eq!(
            verifier.verify(METHOD, Some(clone.sign(METHOD).as_bytes())),
            Ok(())
        );
        assert_ne!(new_hub_id().expect("id"), new_hub_id().expect("id"));
        assert!(is_hub_id(&new_hub_id().expect("id")));
    }
}
