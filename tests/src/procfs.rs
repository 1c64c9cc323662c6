//! What a process's memory is, from /proc, for the tests that bound it.

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`...), 0 if unreadable.
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The process's resident memory now.
pub fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// The most resident memory the process has had (`VmHWM`, its high-water mark).
pub fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// Bytes as MiB, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
