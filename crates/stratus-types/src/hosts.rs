//! The hosts of a zone as the region's operators see and steer them (an extension of the
//! contract): `/v1/regions/{region}/zones/{zone}/hosts[/{host}]` and `…/hosts/{host}:{action}`.

use crate::names::ResourceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Whether placement may put new instances on a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostScheduling {
    /// New instances may be placed on it.
    Schedulable,
    /// No new instances; those on it stay.
    Cordoned,
    /// No new instances, and its instances are to move off: it lists those still on it.
    Draining,
    /// Draining, and nothing is left on it.
    Drained,
}

/// Whether a host's agent is polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostStatus {
    /// Its agent polled within the region's host timeout.
    Up,
    /// Its agent has not polled for longer: it takes no new instances, and its instances are
    /// REPAIRING.
    Down,
}

/// What a host offers, or what its instances hold of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostResources {
    pub vcpus: u64,
    pub memory_mb: u64,
    pub gpus: Vec<crate::Gpu>,
}

/// An instance placed on a host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostInstance {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub project: ResourceId,
    pub id: ResourceId,
    pub status: crate::InstanceStatus,
}

/// A hypervisor host of a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    /// The host's name, as its agent registered it.
    pub id: String,
    pub zone: ResourceId,
    /// `qemu` or `sim`.
    pub driver: String,
    /// How it runs guests (`kvm`, `tcg`), when its driver says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    pub status: HostStatus,
    pub scheduling: HostScheduling,
    pub capacity: HostResources,
    pub allocated: HostResources,
    pub instance_count: u64,
    /// The instances on it (a single host's view, and every answer for a draining host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<HostInstance>>,
    pub registered_at: DateTime<Utc>,
    /// The last time its agent polled (written at most once a second).
    pub last_heartbeat_at: DateTime<Utc>,
}

/// `GET …/zones/{zone}/hosts` response: every host of the zone, by name.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostList {
    pub hosts: Vec<Host>,
}

/// What an operator can do to a host with `…/hosts/{host}:{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostAction {
    /// No new instances.
    Cordon,
    /// New instances again.
    Uncordon,
    /// No new instances, and list those left to move off.
    Drain,
}

impl HostAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cordon" => Some(Self::Cordon),
            "uncordon" => Some(Self::Uncordon),
            "drain" => Some(Self::Drain),
            _ => None,
        }
    }
}
