//! End-to-end tests of the API against a region on a real listener.

mod baremetal;
mod cli;
mod console;
mod crash;
mod hosts;
mod identity;
mod lifecycle;
mod networks;
mod oidc;
mod openapi;
mod paging;
mod postgres;
mod qemu;
mod quotas;
mod security;
mod servers;
mod support;
mod telemetry;
mod tenancy;
mod typed_client;
mod validation;
mod watch;
