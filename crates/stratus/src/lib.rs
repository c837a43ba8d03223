//! Stratus as a library: the region runner and configuration behind the `stratus` binary,
//! used by the binary itself, the end-to-end tests and the benchmark.

pub mod baremetal;
pub mod cli;
pub mod config;
pub mod db;
pub mod host_setup;
pub mod local_agent;
pub mod metadata_proxy;
pub mod private_files;
pub mod region;
pub mod remote_agent;
pub mod telemetry;

pub use config::Config;
pub use region::Region;

/// The allocator of every program built on Stratus (the binary, its tests and benches).
///
/// A loaded server allocates many small, short-lived buffers across threads (rows, JSON,
/// requests); glibc's allocator took about a fifth of its time. mimalloc also stands in for
/// `malloc` itself (the crate's `override` feature), so SQLite's allocations use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
