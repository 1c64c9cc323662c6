//! The checks through the hub: it answers, its version and protocol, the clocks, its history,
//! its engines.

use std::time::Duration;
use warren::proto::{DatabaseHealth, DiagnoseReply, EngineHealth};

use super::local::Found;
use super::{Report, Status};
use crate::cli::HubArgs;
use crate::time;

/// How long the hub gets to answer the unsigned health check.
const PING_LIMIT: Duration = Duration::from_secs(5);
/// Under this much free room beside the history, say so.
const LOW_ROOM: u64 = 256 << 20;

/// Runs the checks that need the hub; returns its engines (empty if it could not be asked).
pub(crate) async fn through_the_hub(
    hub: &HubArgs,
    found: Result<&Found, &str>,
    report: &mut Report,
) -> Vec<EngineHealth> {
    // The checks after the health check, skipped from the first that can't run.
    const LATER: [&str; 4] = ["hub version", "clock", "database", "engines"];
    let skip_rest = |report: &mut Report, from: usize, why: &str| {
        for what in &LATER[from..] {
            report.skip(*what, why);
        }
    };
    let found = match found {
        Ok(found) => found,
        Err(why) => {
            report.skip("hub answers", why);
            skip_rest(report, 0, why);
            return Vec::new();
        }
    };
    let socket = &found.socket;
    match tokio::time::timeout(PING_LIMIT, warren::ping(socket)).await {
        Ok(Ok(())) => report.ok("hub answers", format!("serving on {}", socket.display())),
        Ok(Err(err)) => {
            report.fail("hub answers", err.to_string());
            skip_rest(report, 0, "no hub answers");
            return Vec::new();
        }
        Err(_) => {
            report.fail(
                "hub answers",
                format!(
                    "something accepts connections on {} but does not answer within {PING_LIMIT:?}: is the hub stopped (SIGSTOP) or overloaded?",
                    socket.display()
                ),
            );
            skip_rest(report, 0, "no hub answers");
            return Vec::new();
        }
    }
    let client = match crate::connect(hub).await {
        Ok(client) => client,
        Err(err) => {
            report.fail("hub version", crate::one_line(&err));
            skip_rest(report, 1, "the hub refused this client");
            return Vec::new();
        }
    };
    match client.version().await {
        Ok(version) if version.hub_version == warren_proto::VERSION => report.ok(
            "hub version",
            format!(
                "warren-hub {}, protocol {}, as this warren",
                version.hub_version, version.protocol_version
            ),
        ),
        Ok(version) => report.warn(
            "hub version",
            format!(
                "warren-hub {} (protocol {}) and this warren {} differ; they speak the same protocol, but run the same release on both sides when you can",
                version.hub_version,
                version.protocol_version,
                warren_proto::VERSION
            ),
        ),
        Err(err) => report.fail("hub version", err.to_string()),
    }
    let health = match client.diagnose().await {
        Ok(health) => health,
        Err(err) => {
            report.warn(
                "clock",
                format!("the hub can't report its health ({err}); is it older than this warren?"),
            );
            skip_rest(report, 2, "the hub can't report its health");
            return Vec::new();
        }
    };
    let (status, detail) = judge_skew(warren_proto::now_us() - health.hub_time_us);
    report.add("clock", status, detail);
    database(health.database.as_ref(), report);
    engines(&health, report);
    health.engines
}

/// What a difference between this machine's clock and the hub's means: signatures are refused
/// past the hub's window (60 s by default). The SDK and engines correct for it from a refusal,
/// but `warren sign` and other languages' clients do not.
pub(crate) fn judge_skew(skew_us: i64) -> (Status, String) {
    let by = time::duration(Duration::from_micros(skew_us.unsigned_abs()));
    let side = if skew_us > 0 { "ahead of" } else { "behind" };
    let advice = "signatures made here by `warren sign` or other clients are refused past the hub's --signature-window (60 s by default); sync the clocks (chrony, systemd-timesyncd)";
    match skew_us.unsigned_abs() {
        0..2_000_000 => (
            Status::Ok,
            "this machine and the hub agree within 2 s".into(),
        ),
        2_000_000..30_000_000 => (
            Status::Warn,
            format!("this machine's clock is {by} {side} the hub's; {advice}"),
        ),
        _ => (
            Status::Fail,
            format!("this machine's clock is {by} {side} the hub's; {advice}"),
        ),
    }
}

fn database(health: Option<&DatabaseHealth>, report: &mut Report) {
    let Some(db) = health else {
        report.warn("database", "the hub said nothing of its history");
        return;
    };
    if db.location == ":memory:" {
        report.ok(
            "database",
            format!(
                "in memory (--db :memory:): {} tasks, gone when the hub stops",
                db.tasks
            ),
        );
        return;
    }
    let location = &db.location;
    if db.integrity != "ok" {
        report.fail(
            "database",
            format!(
                "{location} is damaged ({}). Stop the hub, move the file aside (`mv {location} {location}.broken`) and start the hub again: it begins an empty history",
                db.integrity
            ),
        );
        return;
    }
    let sizes = format!(
        "{location}: {} (+ {} of write-ahead log), {} tasks, {} free",
        size(db.file_bytes),
        size(db.wal_bytes),
        db.tasks,
        size(db.free_bytes)
    );
    if db.free_bytes < LOW_ROOM {
        report.warn(
            "database",
            format!("{sizes}: little room left; the hub stops if it can't commit. Free some, purge old tasks (`warren purge --older-than 7d`) or lower --retain-size"),
        );
    } else {
        report.ok("database", format!("{sizes}; integrity ok"));
    }
}

fn engines(health: &DiagnoseReply, report: &mut Report) {
    if health.engines.is_empty() {
        report.warn(
            "engines",
            "none registered: start some (`warren cluster start`, `warren engines ssh HOST -n N`, or `systemctl --user start warren-engine@1`)",
        );
        return;
    }
    let heartbeat = u64::from(health.heartbeat_ms.max(1));
    let late_after = 2 * heartbeat;
    for engine in &health.engines {
        let what = format!("engine {}", engine.id);
        let who = format!("{} pid {}", engine.hostname, engine.pid);
        let silent = time::duration(Duration::from_millis(engine.silent_ms));
        if engine.silent_ms <= late_after {
            report.ok(what, format!("{who}, last heard {silent} ago"));
        } else {
            report.fail(
                what,
                format!(
                    "{who} has been silent for {silent} (heartbeats every {}; the hub writes it off after {}): is it stopped, or its machine overloaded?",
                    time::duration(Duration::from_millis(heartbeat)),
                    time::duration(Duration::from_millis(health.engine_timeout_ms.into()))
                ),
            );
        }
    }
}

/// Bytes in the largest binary unit that fits: `512 B`, `1.5 KiB`, `12.0 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_is_judged_against_the_signature_window() {
        assert_eq!(judge_skew(500_000).0, Status::Ok);
        assert_eq!(judge_skew(-1_900_000).0, Status::Ok);
        let (status, text) = judge_skew(5_000_000);
        assert_eq!(status, Status::Warn);
        assert!(text.contains("5 s ahead of the hub's"), "{text}");
        let (status, text) = judge_skew(-90_000_000);
        assert_eq!(status, Status::Fail);
        assert!(text.contains("behind") && text.contains("chrony"), "{text}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 << 20), "12.0 MiB");
    }
}
