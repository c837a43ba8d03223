//! The interface every hypervisor driver implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stratus_types::agent::{OverlayPeer, VmSpec};
use uuid::Uuid;

/// What a driver observes of a VM that exists on its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmState {
    /// Defined, disks in place, not running.
    Stopped,
    Running,
    /// vCPUs paused, memory kept.
    Paused,
}

/// A VM's state and, for a stopped VM, why it stopped when the driver knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub state: VmState,
    /// e.g. "guest powered off", "exited with code 1"; `None` when stopped by the agent.
    pub stop_reason: Option<String>,
}

/// Why a driver operation failed, as far as deciding what to do next goes: the agent retries
/// what may pass and gives up at once on what would only fail again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The VM (or something the step needs) is not on this host.
    #[error("{0}")]
    NotFound(String),
    /// A failure that may pass: a busy or slow hypervisor, a lost connection, a full disk.
    #[error("{0}")]
    Transient(String),
    /// A failure that repeating cannot cure: a guest the hypervisor refuses to start, an image
    /// that is not what it claims to be, a step the VM's state does not allow.
    #[error("{0}")]
    Permanent(String),
}

impl DriverError {
    /// Whether trying the same step again may succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DriverError::Permanent(_))
    }
}

/// Operations on the VMs of one host. Every operation is idempotent: doing it twice, or
/// after a crash half-way, leaves the same result as doing it once.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// `sim` or `qemu`.
    fn name(&self) -> &'static str;
    /// How guests run (`kvm`, `tcg`), for drivers where that varies.
    fn accelerator(&self) -> Option<&'static str> {
        None
    }
    /// The VM of instance `uid`, or `None` when the host has none.
    async fn inspect(&self, uid: Uuid) -> Result<Option<VmInfo>, DriverError>;
    /// Every VM on the host, whoever it belongs to (the orphan reaper compares them).
    async fn list(&self) -> Result<Vec<Uuid>, DriverError>;
    /// Defines the VM and prepares its disks, leaving it stopped.
    async fn prepare(&self, spec: &VmSpec) -> Result<(), DriverError>;
    /// Starts a stopped VM.
    async fn boot(&self, uid: Uuid) -> Result<(), DriverError>;
    /// Resets a running VM (a reboot).
    async fn reset(&self, uid: Uuid) -> Result<(), DriverError>;
    async fn pause(&self, uid: Uuid) -> Result<(), DriverError>;
    async fn resume(&self, uid: Uuid) -> Result<(), DriverError>;
    /// Stops the VM, keeping its persistent disks and dropping temporary ones. Returns how the
    /// stop went when the owner should know (the guest ignored the power-off request and was
    /// stopped hard), `None` for an orderly stop.
    async fn power_off(&self, uid: Uuid) -> Result<Option<String>, DriverError>;
    /// Removes the VM and everything it had on the host.
    async fn destroy(&self, uid: Uuid) -> Result<(), DriverError>;
    /// Told the current spec of every instance on the host at each poll, so a driver can keep
    /// what it serves the guest (its metadata) up to date.
    async fn observe(&self, _spec: &VmSpec) -> Result<(), DriverError> {
        Ok(())
    }
    /// Told at each poll where the NICs of this host's networks on other hosts are, so a
    /// driver with an overlay can send their frames there.
    async fn observe_overlay(&self, _peers: &[OverlayPeer]) -> Result<(), DriverError> {
        Ok(())
    }
    /// Serial console output from byte offset `from` (or the oldest kept byte after it);
    /// returns the offset of the first byte returned.
    async fn serial_output(&self, uid: Uuid, from: u64) -> Result<(u64, Vec<u8>), DriverError>;
}

/// An image file on this host, ready to back disks.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFile {
    pub path: std::path::PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
}

/// Where a driver gets image files from.
#[async_trait]
pub trait ImageSource: Send + Sync + 'static {
    async fn image_file(&self, id: &str) -> Result<ImageFile, DriverError>;
}
