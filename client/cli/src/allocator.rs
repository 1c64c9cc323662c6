//! How the CLI's allocator keeps the memory it frees.
//!
//! A stream of output passes through buffers of up to 2 MiB (HTTP/2 frames as they are read).
//! glibc's default gives every free block at the top of the heap back to the system at once,
//! and maps the largest buffers anew each time, so each MiB of a stream was faulted in and
//! zeroed by the kernel again: a third of `warren exec`'s system time on a 1 GiB stream.
//! `warren` is a short-lived process whose memory the system gets back when it exits, so it
//! keeps what it frees instead.

/// Blocks at least this large are mapped on their own: larger than any frame.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of the heap is given back only beyond this much.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 64 << 20;
/// What the heap grows by beyond each request, so that a stream does not grow it chunk by chunk.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 4 << 20;

/// Sets the thresholds above; to be called first thing, before other threads allocate.
#[allow(unsafe_code)]
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (option, value) in [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (libc::M_TOP_PAD, TOP_PAD),
    ] {
        // SAFETY: mallopt only changes the allocator's settings; it takes no pointer and locks
        // the allocator while it does. A value it refuses leaves glibc's default, which works.
        unsafe {
            libc::mallopt(option, value);
        }
    }
}
