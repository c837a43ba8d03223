//! Organizations (tenants) and projects.

use crate::names::ResourceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// An organization: a tenant owning projects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
}

/// Body of `POST /v1/regions/global/organizations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationCreateRequest {
    /// Generated (`org-` and six characters) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body of `PATCH /v1/regions/global/organizations/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /v1/regions/global/organizations` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationList {
    pub organizations: Vec<Organization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A project: the unit that owns compute resources, inside one organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    pub organization_id: ResourceId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /v1/regions/global/projects`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectCreateRequest {
    /// Generated (`project-` and six characters) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub organization_id: ResourceId,
}

/// Body of `PATCH /v1/regions/global/projects/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /v1/regions/global/projects` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectList {
    pub projects: Vec<Project>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// An organization's quotas and what its instances use of each
/// (`/v1/regions/global/organizations/{id}/quotas`). A limit that is absent is unlimited.
/// `ramGb` counts GiB of instance memory and `storageTb` TiB of instance disks; cores, memory
/// and GPUs are held by instances meant to run, the rest by every instance not being deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    pub self_link: String,
    pub id: ResourceId,
    pub organization_id: ResourceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_gb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_tb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_count: Option<u64>,
    /// Instances (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u64>,
    /// GiB of instance disks (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gb: Option<u64>,
    /// GPUs of one type, by GPU type id (extension).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_count_by_type: BTreeMap<String, u64>,
    pub usage: QuotaUsage,
}

/// What an organization's instances hold, in the units of its quotas (rounded up).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    pub cpu_cores: u64,
    pub ram_gb: u64,
    pub gpu_count: u64,
    pub storage_tb: u64,
    pub cluster_count: u64,
    pub instance_count: u64,
    pub disk_gb: u64,
    pub gpu_count_by_type: BTreeMap<String, u64>,
}

/// Body of `PATCH /v1/regions/global/organizations/{id}/quotas`: a number sets a limit, `null`
/// makes it unlimited, and a field left out keeps its setting. `gpuCountByType` changes only the
/// types it names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotasUpdateRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub cpu_cores: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub ram_gb: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub gpu_count: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub storage_tb: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub cluster_count: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub instance_count: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u64>, maximum = 1_099_511_627_776_u64)]
    pub disk_gb: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, Option<u64>>)]
    pub gpu_count_by_type: BTreeMap<String, Option<u64>>,
}

/// A field that is present: `null` is `Some(None)`, a value `Some(Some(v))` (absent stays
/// `None` through `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
