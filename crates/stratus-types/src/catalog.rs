//! The catalog: regions, zones, instance types, GPU types and images (read-only here).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A region served by a Stratus deployment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    #[schema(format = "uri")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// URIs of the region's zones.
    pub zones: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A zone (a failure domain of hosts) inside a region.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Zone {
    #[schema(format = "uri")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// URI of the region.
    pub region: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// GPUs that come with an instance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeGpu {
    /// URI of the GPU type.
    #[serde(rename = "type")]
    pub gpu_type: String,
    pub count: u32,
}

/// A size of instance offered in a zone.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceType {
    #[schema(format = "uri")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// URI of the zone.
    pub zone: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: Vec<InstanceTypeGpu>,
    pub baremetal: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A kind of GPU offered in a zone.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuType {
    #[schema(format = "uri")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub zone: String,
    pub vendor: String,
    pub memory_gb: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Image file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Qcow2,
    Raw,
}

/// Whether an image can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    Pending,
    Importing,
    Ready,
    Failed,
}

/// A disk image that boot disks are made from.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[schema(format = "uri")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub format: ImageFormat,
    pub size_bytes: u64,
    /// The smallest boot disk, in GB, that holds this image.
    pub min_disk_gb: u32,
    pub os: String,
    pub status: ImageStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/regions` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionList {
    pub regions: Vec<Region>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/regions/{region}/zones` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneList {
    pub zones: Vec<Zone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET …/zones/{zone}/instance-types` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeList {
    pub instance_types: Vec<InstanceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET …/zones/{zone}/gpu-types` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuTypeList {
    pub gpu_types: Vec<GpuType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/regions/{region}/compute/images` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageList {
    pub images: Vec<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
