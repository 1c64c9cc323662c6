//! Giving memory back to the system once many tasks have left the hub's memory.
//!
//! glibc's allocator keeps the pages it frees for reuse, and fragmentation stops it from
//! handing them back by itself: after 100,000 cells the hub held 600 MiB of which 41 MiB were
//! in use. `malloc_trim` returns the free pages; it walks the heap, so the hub calls it only
//! after a burst has left (and on a blocking thread).

/// How many tasks must have left memory since the last trim before the next.
const TRIM_AFTER_TASKS: usize = 1_000;

/// The most tasks in memory since the last trim.
#[derive(Debug, Default)]
pub(super) struct Shedding {
    peak: usize,
}

impl Shedding {
    /// Notes how many tasks are in memory now; true when enough have left to trim.
    pub(super) fn note(&mut self, in_memory: usize) -> bool {
        self.peak = self.peak.max(in_memory);
        if self.peak - in_memory < TRIM_AFTER_TASKS {
            return false;
        }
        self.peak = in_memory;
        true
    }
}

/// Hands the allocator's free pages back to the system.
#[allow(unsafe_code)]
pub(super) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory inside the allocator; it takes no pointer
    // and is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_a_thousand_tasks_have_left_since_the_peak_and_not_before() {
        let mut shedding = Shedding::default();
        assert!(!shedding.note(5_000));
        assert!(!shedding.note(4_001), "999 left");
        assert!(shedding.note(4_000), "1,000 left");
        assert!(!shedding.note(3_500), "counted again from the trim");
        assert!(!shedding.note(6_000));
        assert!(shedding.note(0));
        give_back();
    }
}
