//! Bare-metal servers (`…/projects/{p}/infrastructure/servers`), for the region's operators.
//!
//! A server is a machine with a Redfish BMC. Operators register it with the BMC's address and
//! credentials; Stratus inspects it, and once provisioned (`ready`) instances of bare-metal
//! types are placed on it, one at a time. The credentials are write-only: no answer carries
//! them.

use crate::names::ResourceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningState {
    /// Known and inspected (or being inspected); not yet offered to instances.
    Registered,
    /// Being made ready: BMC checked, powered off, media ejected.
    Provisioning,
    /// Offered to instances of bare-metal types (it may hold one: see `instance`).
    Ready,
    /// Something went wrong; `statusMessage` says what. `:provision` tries again.
    Failed,
    /// Taken out of the region.
    Decommissioned,
}

impl ProvisioningState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "registered" => Self::Registered,
            "provisioning" => Self::Provisioning,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            "decommissioned" => Self::Decommissioned,
            _ => return None,
        })
    }
}

/// The verdict of the periodic BMC checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Healthy,
    Degraded,
    Failed,
}

/// How the server's BMC answered its last check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    pub status: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<DateTime<Utc>>,
    pub failure_reasons: Vec<String>,
}

/// The server's processors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuSpecs {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The server's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RamSpecs {
    pub size_gib: f64,
}

/// The server's GPUs (Redfish inspection finds none yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpecs {
    pub count: u64,
}

/// A disk of the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpecs {
    pub name: String,
    pub size_bytes: u64,
}

/// A network interface of the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicSpecs {
    pub id: String,
    pub mac_address: String,
}

/// What inspection found (empty until the first inspection).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareSpecs {
    pub cpu: CpuSpecs,
    pub ram: RamSpecs,
    pub gpu: GpuSpecs,
    /// Extension: the disks.
    pub disks: Vec<DiskSpecs>,
    /// Extension: the network interfaces with their MAC addresses.
    pub nics: Vec<NicSpecs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A bare-metal server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    pub hardware_specs: HardwareSpecs,
    pub bmc_address: String,
    pub provisioning_state: ProvisioningState,
    pub health_status: HealthStatus,
    pub tags: BTreeMap<String, String>,
    pub persona: String,
    /// Extension: the zone whose bare-metal instances it serves.
    pub zone: ResourceId,
    /// Extension: what the server is doing, or why it `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Extension: the power state its BMC last reported (`On`, `Off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// Extension: the instance placed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub instance: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/infrastructure/servers` (and an item of `:batchCreate`).
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerCreateRequest {
    /// The server's name; made up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    /// The BMC's Redfish URL: `http(s)://host[:port]`, followed by
    /// `/redfish/v1/Systems/{id}` when the BMC manages more than one system.
    #[schema(
        pattern = r"^(redfish\+)?https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/redfish/v1(/Systems/[A-Za-z0-9._~-]+)?)?/?$"
    )]
    pub bmc_address: String,
    /// Extension: the BMC user (write-only).
    #[schema(min_length = 1, max_length = 256)]
    pub bmc_username: String,
    /// Extension: the BMC password (write-only, kept encrypted).
    #[schema(format = "password", min_length = 1, max_length = 1024)]
    pub bmc_password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// At most 64, keys of at most 256 bytes, values of at most 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 63)]
    pub persona: Option<String>,
    /// Extension: the zone it serves (the region's first zone when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<ResourceId>,
}

impl std::fmt::Debug for ServerCreateRequest {
    /// Without the password, so a logged request never shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCreateRequest")
            .field("id", &self.id)
            .field("bmc_address", &self.bmc_address)
            .field("bmc_username", &self.bmc_username)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// Body of `PATCH …/infrastructure/servers/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// At most 64, keys of at most 256 bytes, values of at most 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 63)]
    pub persona: Option<String>,
}

/// `GET …/infrastructure/servers` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerList {
    pub servers: Vec<Server>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Body of `POST …/servers/{id}:provision`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerProvisionRequest {
    /// Not used: a server's OS comes from the image of the instance placed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<serde_json::Value>,
}

/// Where a provisioning job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
    Failed,
}

/// `:provision` response (202): the server's `provisioningState` follows the job.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerJob {
    pub job_id: String,
    pub status: JobStatus,
}

/// `:validate` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerValidation {
    pub valid: bool,
    pub errors: Vec<String>,
}

/// Severity of a server log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogSeverity {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogSeverity {
    pub fn parse(text: &str) -> Self {
        match text {
            "debug" => Self::Debug,
            "warning" => Self::Warning,
            "error" => Self::Error,
            _ => Self::Info,
        }
    }
}

/// One thing Stratus did with the server's BMC, or that happened to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerLogEntry {
    pub timestamp: DateTime<Utc>,
    pub severity: LogSeverity,
    pub message: String,
}

/// `GET …/servers/{id}/logs` response, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerLogList {
    pub logs: Vec<ServerLogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Body of `POST …/infrastructure/servers:batchCreate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerBatchCreateRequest {
    pub servers: Vec<ServerCreateRequest>,
}

/// An item of `:batchCreate` that was not registered.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBatchFailure {
    pub index: u32,
    pub error: crate::ErrorInfo,
}

/// `:batchCreate` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerBatchResult {
    pub succeeded: Vec<Server>,
    pub failed: Vec<ServerBatchFailure>,
}

/// What `…/servers/{id}:{action}` can do besides `provision` and `validate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ServerAction {
    PowerOn,
    PowerOff,
    Reboot,
    /// Inspect again (hardware and power).
    Inspect,
}

impl ServerAction {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "powerOn" => Self::PowerOn,
            "powerOff" => Self::PowerOff,
            "reboot" => Self::Reboot,
            "inspect" => Self::Inspect,
            _ => return None,
        })
    }
}
