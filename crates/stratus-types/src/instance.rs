//! The Instance resource and the bodies that create and update it.

use crate::names::{Hostname, Labels, MetadataKey, ResourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `lifecycle.status` of an instance (the contract's enum, Compute Engine style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    /// Accepted; a host is reserved and disks are being prepared.
    Provisioning,
    /// The hypervisor process is starting (also while rebooting or resuming).
    Staging,
    /// The vCPUs are running.
    Running,
    /// A stop or a delete is in progress.
    Stopping,
    /// The guest is being paused with its memory kept.
    Suspending,
    /// The guest is paused with its memory kept.
    Suspended,
    /// The host stopped reporting; the instance returns to its desired state when it does.
    Repairing,
    /// Stopped: by `:stop`, by the guest powering off, or by a start that failed.
    Terminated,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 8] = [
        Self::Provisioning,
        Self::Staging,
        Self::Running,
        Self::Stopping,
        Self::Suspending,
        Self::Suspended,
        Self::Repairing,
        Self::Terminated,
    ];

    /// The contract's spelling, as stored and as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Staging => "STAGING",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Suspending => "SUSPENDING",
            Self::Suspended => "SUSPENDED",
            Self::Repairing => "REPAIRING",
            Self::Terminated => "TERMINATED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A state that work is under way to leave.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Self::Provisioning | Self::Staging | Self::Stopping | Self::Suspending
        )
    }
}

/// What the owner of an instance wants it to be; the reconciler and the agent drive toward it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredState {
    Running,
    Stopped,
    Suspended,
    Deleted,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Stopped => "STOPPED",
            Self::Suspended => "SUSPENDED",
            Self::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Stopped, Self::Suspended, Self::Deleted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The lifecycle block of an instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub status: InstanceStatus,
    /// Human-readable explanation of the status (progress, or why it stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
}

/// One instance metadata entry, served to the guest by the metadata service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataItem {
    pub key: MetadataKey,
    /// Free-form text interpreted by the guest image (for example `ssh-keys`, `user-data`).
    pub value: String,
}

/// Disk attachment interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiskInterface {
    Scsi,
    Nvme,
}

/// Whether a disk outlives a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiskType {
    Persistent,
    Temporary,
}

/// Disk access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiskMode {
    ReadOnly,
    #[default]
    ReadWrite,
}

/// A disk of an instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disk {
    /// Size in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<DiskInterface>,
    /// URI of an image, e.g. `/v1/regions/local-1/compute/images/stratus-guest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(https?://[^/]+)?/v1/regions/[^/]+/compute/images/[^/]+$")]
    pub source: Option<String>,
    #[serde(default)]
    pub boot: bool,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<DiskType>,
    #[serde(default)]
    pub mode: DiskMode,
}

/// A network interface of an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^\d{1,3}(\.\d{1,3}){3}$")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
    /// The NIC's MAC address, chosen by the region (extension; read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// An EXTERNAL address of the instance's project that reaches this NIC by 1:1 NAT on the
    /// host where the instance runs (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub external_address: Option<String>,
    /// The IPv4 address of `externalAddress` (extension; read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ipv4_address: Option<String>,
}

/// GPUs attached to an instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    /// URI of a GPU type, e.g. `/v1/regions/local-1/zones/local-1a/gpu-types/nvidia-h100`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(https?://[^/]+)?/v1/regions/[^/]+/zones/[^/]+/gpu-types/[^/]+$")]
    pub gpu_type: String,
    pub count: u32,
}

/// A compute instance (VM or bare metal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Relative URL of this instance.
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    pub labels: Labels,
    /// URI of the instance type.
    #[serde(rename = "type")]
    #[schema(format = "uri-reference")]
    pub instance_type: String,
    pub instance_metadata: Vec<MetadataItem>,
    pub hostname: String,
    pub lifecycle: Lifecycle,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub gpus: Vec<Gpu>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/compute/instances`. Only `type` is required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceCreateRequest {
    /// Generated (`instance-` and six characters) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// URI of an instance type, e.g. `/v1/regions/local-1/zones/local-1a/instance-types/e2-small`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(https?://[^/]+)?/v1/regions/[^/]+/zones/[^/]+/instance-types/[^/]+$")]
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_metadata: Option<Vec<MetadataItem>>,
    /// The id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<Vec<Nic>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<Gpu>>,
}

/// Body of `PATCH …/compute/instances/{id}`: a present field replaces that field wholesale.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_metadata: Option<Vec<MetadataItem>>,
}

/// Fields of an Instance that the server sets; a client sending them gets a 400.
pub const INSTANCE_READ_ONLY_FIELDS: &[&str] =
    &["selfLink", "uid", "lifecycle", "createdAt", "updatedAt"];

/// Fields of an Instance fixed at creation; a PATCH naming them gets a 400.
pub const INSTANCE_IMMUTABLE_FIELDS: &[&str] = &["id", "type", "hostname", "disks", "nics", "gpus"];

/// `GET …/compute/instances` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceList {
    pub instances: Vec<Instance>,
    /// Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// Number of matching instances; present when `offset` was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// What a watch event tells (`GET …/compute/instances?watch=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WatchEventType {
    /// The instance is new to the watcher: created, or present when the watch began.
    Added,
    Modified,
    /// The instance is gone.
    Deleted,
    /// Nothing to report for the watcher's selection, but the watch has read up to
    /// `resourceVersion`; also sent once the instances present when the watch began are all
    /// sent.
    Bookmark,
    /// The watch ended: `error` tells why (410: the watcher fell behind, or its
    /// `resourceVersion` is too old; list again by watching without one).
    Error,
}

/// One event of an instance watch, the `data` of a server-sent event whose `event` is the
/// type and whose `id` is the resource version.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceWatchEvent {
    #[serde(rename = "type")]
    pub event_type: WatchEventType,
    /// Where a watch resumes after this event (`resourceVersion`, or the `Last-Event-ID`
    /// header of a reconnecting event source).
    pub resource_version: String,
    /// The instance the event is about (`ADDED`, `MODIFIED`, `DELETED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub self_link: Option<String>,
    /// The instance (`ADDED`, `MODIFIED`; `DELETED`: as last seen, absent when the replica
    /// serving the watch never saw it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Instance>,
    /// Why the watch ended (`ERROR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorInfo>,
}

/// `GET …/instances/{id}/serialPortOutput` response: a window of the serial console log.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerialPortOutput {
    pub contents: String,
    /// Byte offset of `contents` in the whole log; later than the requested `start` when
    /// older output has been discarded.
    pub start: u64,
    /// Offset to pass as `start` to continue reading.
    pub next: u64,
}

/// What can be done to an instance with `…/instances/{id}:{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceAction {
    Start,
    Stop,
    Reboot,
    Suspend,
    Resume,
}
