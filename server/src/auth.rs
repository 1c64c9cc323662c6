//! Checks every call's HMAC signature before any of it runs.
//!
//! This is a tower layer, not a tonic interceptor, because the signature covers the gRPC method
//! path and interceptors can't see it. A refused call is answered at once with a status; its
//! request body (for a stream, every message) is never read. Refusals are logged at most
//! [`WARNINGS_PER_SECOND`] times a second, with a count of those left out, so a flood of forged
//! calls can't flood the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Status;
use warren_proto::auth::{HEADER, HUB_ID_HEADER, HUB_TIME_HEADER, Refusal, Verifier, quote};

use crate::gate::{Check, GateLayer};

/// Services that answer without a signature: they reveal nothing and change nothing.
const UNSIGNED_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Refusal warnings logged per second at most.
const WARNINGS_PER_SECOND: u32 = 10;

/// The hub's routes wrapped in signature checking.
pub(crate) fn layer(verifier: Arc<Verifier>) -> GateLayer<Signatures> {
    GateLayer::new(Signatures {
        verifier,
        log: Arc::new(RateLimitedLog::new(WARNINGS_PER_SECOND)),
    })
}

/// The signature check every call passes before any of it runs.
#[derive(Clone, Debug)]
pub(crate) struct Signatures {
    verifier: Arc<Verifier>,
    log: Arc<RateLimitedLog>,
}

impl Check for Signatures {
    fn refuse(&self, method: &str, headers: &http::HeaderMap) -> Option<Status> {
        if UNSIGNED_PREFIXES.iter().any(|p| method.starts_with(p)) {
            return None;
        }
        // The constant name: no parsing of the name on every call.
        let mut entries = headers.get_all(http::header::AUTHORIZATION).iter();
        let header = entries.next().map(|v| v.as_bytes());
        let verdict = if entries.next().is_some() {
            // Which one would count is a choice nobody should have to guess about.
            Err(Refusal::Malformed(format!(
                "the call carries {} `{HEADER}` entries; send exactly one",
                headers.get_all(http::header::AUTHORIZATION).iter().count()
            )))
        } else {
            self.verifier.verify(method, header)
        };
        let refusal = verdict.err()?;
        self.log.refused(method, &refusal);
        Some(refusal_status(&refusal, self.verifier.hub_id()))
    }
}

/// The status a refused call gets: UNAUTHENTICATED, or RESOURCE_EXHAUSTED when the replay
/// cache is full. Stale and future refusals carry the hub's clock in `warren-hub-time`; a bad
/// signature carries the id of the hub's current start in `warren-hub-id`, from which a caller
/// that holds the key signs again after a restart.
fn refusal_status(refusal: &Refusal, hub_id: &str) -> Status {
    let code = match refusal {
        Refusal::ReplayCacheFull { .. } => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Unauthenticated,
    };
    let mut status = Status::new(code, refusal.to_string());
    if let Some(Ok(value)) = refusal.hub_time().map(|t| t.to_string().parse()) {
        status.metadata_mut().insert(HUB_TIME_HEADER, value);
    }
    if *refusal == Refusal::BadSignature
        && let Ok(value) = hub_id.parse()
    {
        status.metadata_mut().insert(HUB_ID_HEADER, value);
    }
    status
}

/// Logs refusals, at most `per_second` a second, and then how many were left out.
#[derive(Debug)]
struct RateLimitedLog {
    per_second: u32,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    /// A log that writes at most `per_second` refusals a second.
    fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: Mutex::new(Window {
                start: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    fn refused(&self, method: &str, refusal: &Refusal) {
        if let Some(suppressed) = self.admit(Instant::now()) {
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "left out {suppressed} refusal warnings in the last second"
                );
            }
            tracing::warn!(method = %quote(method), %refusal, "refused a call");
        }
    }

    /// Whether to log one more refusal at `now`; if so, how many were left out before it.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut left_out = 0;
        if now.duration_since(window.start) >= Duration::from_secs(1) {
            left_out = std::mem::take(&mut window.suppressed);
            window.start = now;
            window.logged = 0;
        }
        if window.logged < self.per_second {
            window.logged += 1;
            Some(left_out)
        } else {
            window.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_warnings_are_rate_limited_and_counted() {
        let log = RateLimitedLog::new(3);
        let start = Instant::now();
        let admitted: Vec<_> = (0..1000).map(|_| log.admit(start)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
        // The next second says how many were left out.
        assert_eq!(log.admit(start + Duration::from_secs(1)), Some(997));
        assert_eq!(log.admit(start + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn a_bad_signature_names_the_hub_id_and_nothing_else_does() {
        let bad = refusal_status(&Refusal::BadSignature, "3f9a0c1d2e4b5a69");
        assert_eq!(
            bad.metadata().get(HUB_ID_HEADER).map(|v| v.to_str().ok()),
            Some(Some("3f9a0c1d2e4b5a69"))
        );
        let replayed = refusal_status(&Refusal::Replayed, "3f9a0c1d2e4b5a69");
        assert!(replayed.metadata().get(HUB_ID_HEADER).is_none());
    }
}
