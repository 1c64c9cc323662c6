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

mod key;
mod replay;
mod signer;
mod verifier;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use key::{Key, KeyError};
pub use signer::Signer;
pub use verifier::{Credentials, Refusal, Verifier};

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
}
