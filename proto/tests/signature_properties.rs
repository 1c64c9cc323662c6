//! Generated hostile input for the signature scheme: the header parser never panics and
//! accepts exactly the documented form, nothing that is not a real signature passes, and
//! every header a `Signer` makes passes exactly once.
//!
//! Cases per run: 40,000 arbitrary byte strings, 20,000 near-miss headers, 10,000 altered
//! good headers, 10,000 signed calls (80,000 in all).

use proptest::prelude::*;
use std::sync::LazyLock;
use std::time::Duration;
use warren_proto::auth::{Credentials, Key, Refusal, SCHEME, Signer, Verifier};

const NOW: i64 = 1_700_000_000;
const WINDOW: Duration = Duration::from_secs(60);

fn key() -> Key {
    Key::from_hex(&"5a".repeat(32), "test").expect("key")
}

fn verifier() -> Verifier {
    Verifier::new(&key(), "hub1", WINDOW, 1 << 20)
}

/// One verifier for the cases that must all be refused: a refusal never changes it.
static REFUSER: LazyLock<Verifier> = LazyLock::new(verifier);

/// Headers close to the grammar: the right words with wrong details.
fn near_miss() -> impl Strategy<Value = String> {
    prop_oneof![
        "Warren-HMAC-SHA256[ \t]{0,2}ts=[0-9+ -]{0,12},[ ]?nonce=[A-Za-z0-9_ =,-]{0,70},[ \t]?sig=[0-9a-fA-F ,]{0,70}[ ]?",
        "(Warren-HMAC-SHA256 )?((ts|nonce|sig|x)=[0-9a-f]{0,20},?){0,5}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40_000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_pass(
        header in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let verdict = REFUSER.verify_at("/a.B/C", Some(&header), NOW);
        prop_assert!(verdict.is_err(), "{:?} passed", String::from_utf8_lossy(&header));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn the_parser_accepts_exactly_the_documented_form(header in near_miss()) {
        let verdict = REFUSER.verify_at("/a.B/C", Some(header.as_bytes()), NOW);
        prop_assert!(verdict.is_err());
        if let Err(Refusal::Malformed(why)) = &verdict {
            prop_assert!(why.len() < 300, "a refusal of {} bytes", why.len());
        }
        if let Ok(creds) = Credentials::parse(&header) {
            // Whatever parses is the canonical text of its own fields, byte for byte.
            let again = format!(
                "{SCHEME} ts={},nonce={},sig={}",
                creds.ts,
                creds.nonce,
                hex::encode(creds.sig)
            );
            prop_assert_eq!(again, header);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_change_to_a_good_header_is_refused(
        nonce in "[A-Za-z0-9_-]{16,64}",
        at in any::<prop::sample::Index>(),
        op in 0u8..3,
        byte in any::<u8>(),
    ) {
        let signer = Signer::new(&key(), "hub1");
        let good = signer.sign_with("/a.B/C", NOW, &nonce).into_bytes();
        let mut bad = good.clone();
        let i = at.index(bad.len());
        match op {
            0 => bad[i] = byte,
            1 => bad.insert(i, byte),
            _ => { bad.remove(i); }
        }
        prop_assume!(bad != good);
        let verifier = verifier();
        prop_assert!(verifier.verify_at("/a.B/C", Some(&bad), NOW).is_err());
        // The refusal did not spend the real header's nonce.
        prop_assert_eq!(verifier.verify_at("/a.B/C", Some(&good), NOW), Ok(()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn every_signed_header_passes_exactly_once(
        method in "/[a-zA-Z0-9_.]{1,30}/[A-Za-z0-9_]{1,30}",
        skew in -60i64..=60,
        nonce in "[A-Za-z0-9_-]{16,64}",
        later in 0i64..=120,
    ) {
        let signer = Signer::new(&key(), "hub1");
        let verifier = verifier();
        let header = signer.sign_with(&method, NOW + skew, &nonce);
        prop_assert_eq!(verifier.verify_at(&method, Some(header.as_bytes()), NOW), Ok(()));
        // Never again: for as long as its timestamp passes it is a replay, then it is stale.
        let again = verifier.verify_at(&method, Some(header.as_bytes()), NOW + later);
        prop_assert!(
            matches!(again, Err(Refusal::Replayed) | Err(Refusal::Stale { .. })),
            "{:?}", again
        );
        let fresh = signer.sign(&method);
        prop_assert_eq!(verifier.verify(&method, Some(fresh.as_bytes())), Ok(()));
        prop_assert_eq!(verifier.verify(&method, Some(fresh.as_bytes())), Err(Refusal::Replayed));
    }
}
