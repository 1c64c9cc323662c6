//! Times and durations as people read them: local ISO 8601 times (`jiff`, with the system's
//! time zone), and durations in the largest units that fit (`850 ms`, `5.74 s`, `3 min 12 s`).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::time::Duration;

/// A wire time (microseconds since the Unix epoch) as a local time with milliseconds:
/// `2026-11-30T19:30:01.123+01:00`.
pub(crate) fn local_us(micros: i64) -> String {
    format_local(micros, "%Y-%m-%dT%H:%M:%S%.3f%:z")
}

/// A wire time in whole seconds (as `GetVersion` gives the hub's clock) as a local time:
/// `2026-11-30T19:30:01+01:00`.
pub(crate) fn local_seconds(seconds: i64) -> String {
    format_local(seconds.saturating_mul(1_000_000), "%Y-%m-%dT%H:%M:%S%:z")
}

fn format_local(micros: i64, format: &str) -> String {
    match Timestamp::from_microsecond(micros) {
        Ok(at) => at
            .to_zoned_datetime(TimeZone::system())
            .strftime(format)
            .to_string(),
        // Out of jiff's range: no person will miss the exact rendering.
        Err(_) => format!("{micros} µs after the epoch"),
    }
}

/// A duration in the largest units that fit, three significant figures below a minute:
/// `850 µs`, `12.5 ms`, `5.74 s`, `3 min 12 s`, `2 h 05 min`, `3 d 4 h`.
pub(crate) fn duration(span: Duration) -> String {
    let seconds = span.as_secs_f64();
    if seconds < 1e-3 {
        format!("{} µs", span.as_micros())
    } else if seconds < 1.0 {
        format!("{} ms", three_figures(seconds * 1e3))
    } else if seconds < 60.0 {
        format!("{} s", three_figures(seconds))
    } else {
        let whole = span.as_secs();
        let (days, hours, minutes, secs) = (
            whole / 86_400,
            whole / 3600 % 24,
            whole / 60 % 60,
            whole % 60,
        );
        if days > 0 {
            format!("{days} d {hours} h")
        } else if hours > 0 {
            format!("{hours} h {minutes:02} min")
        } else if secs == 0 {
            format!("{minutes} min")
        } else {
            format!("{minutes} min {secs} s")
        }
    }
}

/// A number of 1 to 999.x with three significant figures, without trailing zeros: `5.74`,
/// `12.5`, `850`, `2`.
fn three_figures(value: f64) -> String {
    let text = if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// How long ago a wire time was, in its largest unit, as listings show it: `just now`,
/// `42s ago`, `3m ago`, `5h ago`, `12d ago`; a time after `now_us` (another machine's clock
/// ahead of this one) is `just now` too.
pub(crate) fn ago(micros: i64, now_us: i64) -> String {
    if micros <= 0 {
        return "-".to_owned();
    }
    let seconds = now_us.saturating_sub(micros) / 1_000_000;
    match seconds {
        ..=0 => "just now".to_owned(),
        1..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// The difference between the hub's clock and this machine's, in words.
pub(crate) fn skew(hub_seconds: i64, here_us: i64) -> String {
    let diff_us = here_us - hub_seconds.saturating_mul(1_000_000);
    // The hub's clock comes in whole seconds: a difference under a second is no difference.
    if diff_us.abs() < 1_000_000 {
        return "this machine's clock agrees within a second".to_owned();
    }
    let by = duration(Duration::from_micros(diff_us.unsigned_abs()));
    if diff_us > 0 {
        format!("this machine's clock is {by} ahead")
    } else {
        format!("this machine's clock is {by} behind")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_500)), "12.5 ms");
        assert_eq!(duration(Duration::from_micros(5_741_497)), "5.74 s");
        assert_eq!(duration(Duration::from_secs(192)), "3 min 12 s");
        assert_eq!(duration(Duration::from_secs(60)), "1 min");
        assert_eq!(duration(Duration::from_secs(2)), "2 s");
        assert_eq!(duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(duration(Duration::from_secs(7500)), "2 h 05 min");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 4 h"
        );
    }

    #[test]
    fn local_times_are_iso_8601_with_an_offset() {
        let text = local_us(1_764_531_001_123_000);
        // 2025-11-30T19:30:01.123 UTC in whatever zone this machine is in.
        assert_eq!(text.len(), "2025-11-30T19:30:01.123+00:00".len(), "{text}");
        assert_eq!(&text[10..11], "T", "{text}");
        assert!(text.contains(":01.123"), "{text}");
        assert_eq!(
            skew(100, 100_400_000),
            "this machine's clock agrees within a second"
        );
        assert_eq!(skew(100, 103_000_000), "this machine's clock is 3 s ahead");
    }

    #[test]
    fn ages_read_like_listings_show_them() {
        let now = 1_764_531_001_000_000;
        let ago_s = |seconds: i64| ago(now - seconds * 1_000_000, now);
        assert_eq!(ago_s(0), "just now");
        assert_eq!(ago_s(-5), "just now");
        assert_eq!(ago_s(42), "42s ago");
        assert_eq!(ago_s(3 * 60 + 59), "3m ago");
        assert_eq!(ago_s(5 * 3600), "5h ago");
        assert_eq!(ago_s(12 * 86_400), "12d ago");
        assert_eq!(ago(0, now), "-");
    }
}
