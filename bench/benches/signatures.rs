//! Per-call cost of the HMAC scheme: signing on the client, verifying on the hub.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use warren_proto::auth::{DEFAULT_SKEW, Key, Signer, Verifier};

const METHOD: &str = "/warren.v1.Control/ListEngines";

fn signatures(c: &mut Criterion) {
    let key = Key::generate().expect("key");
    let signer = Signer::new(&key, "bench");
    c.bench_function("sign one call", |b| {
        b.iter(|| black_box(signer.sign(black_box(METHOD))))
    });

    // A cache big enough that the measurement never fills it.
    let verifier = Verifier::new(&key, "bench", DEFAULT_SKEW, 50_000_000);
    let headers: Vec<String> = (0..2_000_000).map(|_| signer.sign(METHOD)).collect();
    let mut next = headers.iter().cycle();
    c.bench_function("verify one call (MAC, window, replay cache)", |b| {
        b.iter(|| {
            let header = next.next().map(String::as_bytes);
            // A replay of an earlier header still runs the MAC and the cache lookup.
            let _ = black_box(verifier.verify(black_box(METHOD), header));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = signatures
}
criterion_main!(benches);
