//! The Stratus host agent: it makes a hypervisor host do what the control plane intends.
//!
//! The agent pulls (the kubelet model): it registers its host, asks for the instances placed
//! on it, compares each one's recorded status and intent with what its [`Driver`] observes,
//! performs at most one step per instance at a time, and reports the status it reached. The
//! step to take is a pure function ([`plan::next_step`]), so the whole lifecycle can be tested
//! without a hypervisor. The control plane is reached through the [`ControlPlane`] trait: the
//! same agent runs inside `stratus serve` and, later, as `stratus agent` over HTTP.

pub mod agent;
pub mod driver;
pub mod images;
pub mod metadata;
pub mod plan;
pub mod qemu;
pub mod redfish;
pub mod sim;

pub use agent::{Agent, AgentConfig, ControlPlane};
pub use driver::{Driver, DriverError, ImageFile, ImageSource, VmInfo, VmState};
