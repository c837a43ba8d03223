//! The allocator of every program built on Stratus (the binary, its tests and benches), and
//! when it gives freed memory back.
//!
//! A loaded server allocates many small, short-lived buffers across threads (rows, JSON,
//! requests); glibc's allocator took about a fifth of its time. mimalloc also stands in for
//! `malloc` itself (the crate's `override` feature), so SQLite's allocations use it too.
//!
//! By default mimalloc keeps freed pages for a second before it returns them to the system,
//! and it only returns them when the thread that freed them allocates again. A server that
//! has just loaded a region (100,000 instances created, each a burst of rows, JSON and
//! requests) keeps a few tens of MiB that way on threads that then sit idle: 152 MiB resident
//! where the live memory needs 129. The long-running roles therefore purge at once
//! ([`return_freed_memory_at_once`]); the cost is a `madvise` when a whole page empties, which
//! the API benchmark does not tell from noise.

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`): milliseconds a freed
/// page is kept before it is returned to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The environment variable mimalloc reads the purge delay from; where it is set, it wins.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes the allocator return freed pages to the system as soon as they are empty, unless
/// `MIMALLOC_PURGE_DELAY` asks for another delay. Called by the server and the agent at start.
pub fn return_freed_memory_at_once() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: setting an option is a plain store into mimalloc's option table; the purge delay
    // is read afresh each time a page is purged, so changing it while the allocator runs is
    // what the option is for.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_mimalloc_reads_from_its_variable() {
        // SAFETY: reading an option is a plain load from mimalloc's option table.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000, "mimalloc's default purge delay is 1 s");
        return_freed_memory_at_once();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 0);
    }
}
