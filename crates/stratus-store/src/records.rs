//! Rows as the rest of Stratus sees them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stratus_types::{
    DesiredState, Disk, Gpu, ImageFormat, ImageStatus, InstanceStatus, Labels, MetadataItem, Nic,
};
use uuid::Uuid;

/// The owner-supplied description of an instance, kept as one JSON document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub display_name: String,
    pub description: String,
    pub labels: Labels,
    /// URI of the instance type, as the owner sent it (normalised to the relative form).
    pub instance_type: String,
    pub metadata: Vec<MetadataItem>,
    pub hostname: String,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub gpus: Vec<Gpu>,
}

impl InstanceSpec {
    /// The disk it holds: the sizes of its disks summed.
    pub fn disk_gb(&self) -> u64 {
        self.disks
            .iter()
            .map(|d| u64::from(d.size_gb.unwrap_or(0)))
            .sum()
    }
}

/// Which version of an instance a page holds, read without its spec: its keys and
/// generation (every write bumps it, so a version's record never changes), and its labels for
/// the page's selector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceVersion {
    pub uid: Uuid,
    pub id: String,
    pub generation: i64,
    pub labels: Labels,
}

/// An instance: the owner's spec and intent, and what was last observed.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRecord {
    pub uid: Uuid,
    pub project: String,
    pub id: String,
    pub zone: String,
    /// The host the instance is placed on (set by placement at create).
    pub host_id: Option<Uuid>,
    pub spec: InstanceSpec,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpu_type: Option<String>,
    pub gpu_count: u32,
    pub desired: DesiredState,
    pub status: InstanceStatus,
    pub status_message: Option<String>,
    pub status_changed_at: DateTime<Utc>,
    /// Bumped by every write; writes name the generation they read.
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The W3C `traceparent` of the request that last changed it, when traces are on.
    pub traceparent: Option<String>,
    /// The id of the request that last changed it.
    pub request_id: Option<String>,
}

impl InstanceRecord {
    /// What it holds against its organization's quotas once running.
    pub fn amounts(&self) -> stratus_core::quota::Amounts {
        stratus_core::quota::Amounts::of_instance(
            self.vcpus,
            self.memory_mb,
            self.gpu_type.as_deref().map(|t| (t, self.gpu_count)),
            self.spec.disk_gb(),
        )
    }

    /// Moves to `status` with `message`, noting when the status last changed.
    pub fn set_status(
        &mut self,
        status: InstanceStatus,
        message: Option<String>,
        now: DateTime<Utc>,
    ) {
        if status != self.status {
            self.status_changed_at = now;
        }
        self.status = status;
        self.status_message = message;
        self.updated_at = now;
    }
}

/// What an agent says about its host when it registers.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRegistrationRecord {
    pub name: String,
    pub zone: String,
    pub driver: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: Vec<(String, u32)>,
    pub accelerator: Option<String>,
    pub agent_version: Option<String>,
    /// The address its overlay traffic uses, if it takes part in overlays.
    pub underlay: Option<String>,
    pub now: DateTime<Utc>,
}

/// A hypervisor host known to the region.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRecord {
    pub id: Uuid,
    pub name: String,
    pub zone: String,
    pub driver: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: Vec<(String, u32)>,
    pub registered_at: DateTime<Utc>,
    /// Last time its agent asked for assignments.
    pub last_seen_at: DateTime<Utc>,
    /// `SCHEDULABLE`, or `CORDONED` / `DRAINING` when placement must leave it alone.
    pub scheduling: String,
    pub accelerator: Option<String>,
    pub agent_version: Option<String>,
    /// The address its overlay traffic uses, if it takes part in overlays.
    pub underlay: Option<String>,
}

/// A NIC on another host in a network present on a host: where the overlay sends frames for
/// its MAC.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OverlayPeerRecord {
    pub vni: i64,
    pub instance_uid: Uuid,
    pub nic: i64,
    pub underlay: String,
}

/// A network of a project.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkRecord {
    pub uid: Uuid,
    pub project: String,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub cidr: String,
    /// Its VXLAN network identifier, unique in the region.
    pub vni: i64,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A bare-metal server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerRecord {
    pub uid: Uuid,
    pub project: String,
    pub id: String,
    pub zone: String,
    pub display_name: String,
    pub description: String,
    pub bmc_address: String,
    /// The BMC credentials, sealed with the region's secrets key (never shown).
    pub bmc_secret: String,
    pub hardware: stratus_types::HardwareSpecs,
    /// `registered`, `provisioning`, `ready`, `failed` or `decommissioned`.
    pub provisioning_state: String,
    pub status_message: Option<String>,
    pub health: stratus_types::HealthStatus,
    pub power_state: Option<String>,
    pub tags: std::collections::BTreeMap<String, String>,
    pub persona: String,
    /// The host row a ready server serves its instance through.
    pub host_id: Option<Uuid>,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A line of a server's log; `seq` orders them and is the microsecond it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerLogRecord {
    pub server_uid: Uuid,
    pub seq: i64,
    pub severity: String,
    pub message: String,
}

/// A subnet of a network.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetRecord {
    pub uid: Uuid,
    pub project: String,
    pub id: String,
    pub network_uid: Uuid,
    /// The network's id.
    pub network: String,
    pub display_name: String,
    pub description: String,
    pub ipv4_cidr: String,
    pub ipv6_cidr: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The space external addresses are handed out in.
pub const EXTERNAL_SPACE: &str = "external";

/// An address handed out: one a project reserved (`id`), or one a NIC took by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressRecord {
    pub uid: Uuid,
    pub project: String,
    pub id: Option<String>,
    /// The subnet's uid (INTERNAL), or [`EXTERNAL_SPACE`].
    pub space: String,
    pub ip: String,
    pub address_type: stratus_types::AddressType,
    /// The network's and subnet's ids (INTERNAL).
    pub network: Option<String>,
    pub subnet: Option<String>,
    /// The instance whose NIC holds it, and which NIC.
    pub instance_uid: Option<Uuid>,
    pub nic: Option<u32>,
    pub display_name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// An organization's own quota settings over the region's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaRecord {
    pub organization_id: String,
    pub overrides: stratus_core::quota::Overrides,
    /// 0 for settings never stored.
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationRecord {
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProjectRecord {
    pub uid: Uuid,
    pub id: String,
    pub organization_id: String,
    pub display_name: String,
    pub description: String,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A disk image of the region.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub os: String,
    pub format: ImageFormat,
    pub size_bytes: u64,
    pub min_disk_gb: u32,
    pub status: ImageStatus,
    pub status_message: Option<String>,
    /// Where it was imported from (a path or an http(s) URL); `None` for catalog images.
    pub source: Option<String>,
    /// SHA-256 of the file, hex; verified at import when the registration gave it.
    pub sha256: Option<String>,
    /// The image file in the region's image store (or the catalog's file).
    pub file: Option<String>,
    /// Bytes imported so far.
    pub bytes_done: u64,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A token-signing key of the built-in issuer.
#[derive(Clone, Debug, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// An API key; only the SHA-256 of its secret is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub uid: Uuid,
    pub id: String,
    pub secret_hash: String,
    pub organization_id: String,
    /// `organization` or `project`.
    pub scope: String,
    pub scope_id: String,
    pub roles: Vec<String>,
    pub created_by: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `active` or `disabled`.
    pub status: String,
    /// The secret before the last rotation, accepted until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub last_rotated_at: Option<DateTime<Utc>>,
}

/// A service account: a non-human principal of an organization, with roles, that
/// authenticates with client credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceAccountRecord {
    pub uid: Uuid,
    pub id: String,
    /// What the account presents as `client_id`.
    pub client_id: String,
    pub organization_id: String,
    pub display_name: String,
    pub description: String,
    /// `organization` or `project`.
    pub scope: String,
    pub scope_id: String,
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A client secret of a service account; only its SHA-256 is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialRecord {
    pub uid: Uuid,
    pub id: String,
    pub service_account_id: String,
    pub secret_hash: String,
    /// After this the credential is expired (never, when `None`).
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl CredentialRecord {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// One mutating API request, as the audit trail keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEventRecord {
    /// Orders events by time: milliseconds since the epoch, zero-padded, then a random suffix.
    pub id: String,
    pub at: DateTime<Utc>,
    /// `-` when the request carried no acceptable token.
    pub principal: String,
    pub principal_type: String,
    pub organization_id: String,
    pub credential_id: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub request_id: String,
}

/// A revoked access token, refused until it would have expired anyway.
#[derive(Clone, Debug, PartialEq)]
pub struct RevokedTokenRecord {
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// Which slice of an id-ordered collection to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Keyset cursor: only ids after this one.
    pub after: Option<String>,
    /// Number of matching items to skip (the offset mode; not combined with `after`).
    pub offset: Option<u64>,
    pub limit: u32,
    /// Count all matching items too.
    pub with_total: bool,
}

/// One page of an id-ordered collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More items follow the last one.
    pub more: bool,
    pub total: Option<u64>,
}

/// The retained serial-console output of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleLogRecord {
    pub instance_uid: Uuid,
    /// Byte offset of `content`'s first byte in the whole output.
    pub base_offset: u64,
    pub content: Vec<u8>,
}

/// Every row a region stores, for moving a region between backends (`stratus db copy`).
/// Leases are not carried: a copy is made with the region stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub settings: Vec<(String, String)>,
    pub organizations: Vec<OrganizationRecord>,
    pub projects: Vec<ProjectRecord>,
    pub hosts: Vec<HostRecord>,
    pub instances: Vec<InstanceRecord>,
    pub console_logs: Vec<ConsoleLogRecord>,
    pub signing_keys: Vec<SigningKeyRecord>,
    pub api_keys: Vec<ApiKeyRecord>,
    pub images: Vec<ImageRecord>,
    pub revoked_tokens: Vec<RevokedTokenRecord>,
    pub service_accounts: Vec<ServiceAccountRecord>,
    pub credentials: Vec<CredentialRecord>,
    pub audit_events: Vec<AuditEventRecord>,
    pub quotas: Vec<QuotaRecord>,
    pub networks: Vec<NetworkRecord>,
    pub subnets: Vec<SubnetRecord>,
    pub addresses: Vec<AddressRecord>,
    pub servers: Vec<ServerRecord>,
    pub server_logs: Vec<ServerLogRecord>,
}

impl Snapshot {
    /// Rows per table, by table name.
    pub fn row_counts(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("settings", self.settings.len()),
            ("organizations", self.organizations.len()),
            ("projects", self.projects.len()),
            ("hosts", self.hosts.len()),
            ("instances", self.instances.len()),
            ("console_logs", self.console_logs.len()),
            ("signing_keys", self.signing_keys.len()),
            ("api_keys", self.api_keys.len()),
            ("images", self.images.len()),
            ("revoked_tokens", self.revoked_tokens.len()),
            ("service_accounts", self.service_accounts.len()),
            ("service_account_credentials", self.credentials.len()),
            ("audit_events", self.audit_events.len()),
            ("quotas", self.quotas.len()),
            ("networks", self.networks.len()),
            ("subnets", self.subnets.len()),
            ("addresses", self.addresses.len()),
            ("servers", self.servers.len()),
            ("server_logs", self.server_logs.len()),
        ]
        .into_iter()
        .map(|(table, n)| (table.to_owned(), n as u64))
        .collect()
    }
}
