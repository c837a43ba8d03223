//! Stratus as a library: the region runner and configuration behind the `stratus` binary,
//! used by the binary itself, the end-to-end tests and the benchmark.

pub mod allocator;
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
