//! Asking the allocator to give its free pages back to the kernel.

/// Returns the free memory the system allocator keeps to the kernel, and says whether it could.
///
/// With glibc (Linux, `target_env = "gnu"`) this is `malloc_trim(0)`: every arena's free
/// pages, in the middle of the heap too, are released with `madvise(MADV_DONTNEED)`, so the
/// resident size drops while the addresses stay reserved. It takes each arena's lock in turn and
/// walks its free chunks, so it costs about a millisecond per few tens of MiB of heap: call it
/// off the async workers (a server after a burst uses `spawn_blocking`), not per call. Elsewhere
/// it does nothing and returns `false`; with a Rust global allocator other than the system one
/// (jemalloc, mimalloc) it only trims glibc's own, mostly empty, arenas.
///
/// ```
/// // After a program's own burst of work (a client that closed a thousand connections):
/// let trimmed = volley::memory::return_free_memory();
/// assert_eq!(trimmed, cfg!(all(target_os = "linux", target_env = "gnu")));
/// ```
pub fn return_free_memory() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer; it locks glibc's arenas itself and only releases
    // pages of chunks that are free.
    unsafe { libc::malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
