//! Wire types of the k0rdent compute API as Stratus serves it.
//!
//! Everything a client sends or receives is defined here, once, with serde for the JSON shape and
//! utoipa for the OpenAPI document. The server, the agents and the client share these types, so
//! the document, the handlers and the client cannot drift apart.
//!
//! Validation follows "parse, don't validate": identifiers, hostnames, metadata keys and labels
//! are newtypes that can only be built from valid text, so a handler that holds an
//! [`ResourceId`] never has to check it again. Their error messages are written for the person
//! who sent the bad value; the API layer attaches the JSON path of the field.

pub mod agent;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod hosts;
pub mod instance;
pub mod names;
pub mod networks;
pub mod servers;
pub mod tenancy;

pub use catalog::*;
pub use error::*;
pub use hosts::*;
pub use instance::*;
pub use names::*;
pub use networks::*;
pub use servers::*;
pub use tenancy::*;
