//! Stratus domain rules, free of I/O: what an action does to an instance, where an instance
//! fits, how references and selectors are read, and the one error type every layer returns.

pub mod catalog;
pub mod error;
pub mod ids;
pub mod import_sources;
pub mod ipam;
pub mod lifecycle;
pub mod placement;
pub mod quota;
pub mod retry;
pub mod selector;

pub use error::{Error, FieldError, Result};
