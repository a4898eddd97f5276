//! How the process gives memory back (issue 17: gateway RSS with 100 000 sessions in use).
//!
//! The gateway allocates through mimalloc (`main.rs`). Memory freed by a thread is kept
//! for reuse and returned to the system ("purged") only once it has stayed free for
//! mimalloc's purge delay (v3: 1 s), and only when some thread later
//! passes through the allocator's slow path. The SQLite store reads on Tokio's blocking
//! threads, which then sit idle: the pages they freed stayed resident (tens of MiB after a
//! burst of 100 000 session reads, see BENCHMARKS.md). So the delay is shortened at start
//! and the background runtime asks for expired purges every few seconds.
//!
//! SQLite is C and allocates through glibc's malloc, which gives every thread that
//! allocates an arena of its own and keeps what they free: the store's blocking threads
//! each held a share of its page cache and statements. Two arenas are enough for a store
//! that runs at most four statements at once, and the free memory is trimmed with the
//! purges.

/// mimalloc v3's `mi_option_purge_delay` (its `mimalloc.h`; the `extended` bindings of
/// libmimalloc-sys name v2's numbering only). Checked by a test below.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds a freed page stays resident before it is returned. Short enough that a
/// burst's garbage goes within seconds; long enough that steady traffic reuses its pages
/// rather than paying a system call per page freed.
const PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// Sets mimalloc's purge delay and glibc's arena count, each unless the operator chose
/// it in the environment (which the allocators read themselves). Call once, first thing
/// in `main`.
pub fn tune() {
    let chosen = |name: &str| std::env::var_os(name).is_some();
    // (MIMALLOC_RESET_DELAY is the option's former name, still read.)
    if !chosen("MIMALLOC_PURGE_DELAY") && !chosen("MIMALLOC_RESET_DELAY") {
        // SAFETY: sets one option by its index; mimalloc reads it on every purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    #[cfg(target_env = "gnu")]
    if !chosen("MALLOC_ARENA_MAX") {
        // SAFETY: one glibc tunable, set before any thread but this one exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, GLIBC_ARENAS) };
    }
}

/// glibc malloc arenas (SQLite's allocations; Rust's go to mimalloc).
#[cfg(target_env = "gnu")]
const GLIBC_ARENAS: std::os::raw::c_int = 2;

/// Returns to the system what has been free for longer than the purge delay, process
/// wide (mimalloc's arenas are shared by all threads), and glibc's free pages. Blocking
/// (glibc's trim takes its arenas' locks): run it on a blocking thread.
pub fn release() {
    // SAFETY: no arguments to uphold; collects the calling thread's heap and the arenas.
    unsafe { libmimalloc_sys::mi_collect(false) };
    // SAFETY: walks glibc's arenas under their locks, returning whole free pages.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_tune_sets() {
        // Nothing has set it in this process: it reads as mimalloc v3's default (1000 ms),
        // or as the operator's environment. A crate update renumbering the options would
        // make `tune` set some other option; this fails first.
        let expected = match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(v) => v.trim().parse().expect("MIMALLOC_PURGE_DELAY is a number"),
            Err(_) => 1000,
        };
        // SAFETY: reads one option by its index.
        let now = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, expected);
    }
}
