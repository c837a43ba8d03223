//! The catalog: regions, zones, instance types, GPU types and images (read-only here).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A region served by a Stratus deployment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    #[schema(format = "uri-reference")]
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
    #[schema(format = "uri-reference")]
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
    #[schema(format = "uri-reference")]
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
    #[schema(format = "uri-reference")]
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

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qcow2 => "qcow2",
            Self::Raw => "raw",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "qcow2" => Some(Self::Qcow2),
            "raw" => Some(Self::Raw),
            _ => None,
        }
    }
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

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Importing => "IMPORTING",
            Self::Ready => "READY",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Importing, Self::Ready, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A disk image that boot disks are made from.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[schema(format = "uri-reference")]
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
    /// Import progress, or why the import failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Where the image was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// SHA-256 of the image file, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /v1/regions/{region}/compute/images`: register an image to import.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageCreateRequest {
    pub id: crate::ResourceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// An absolute path on the control plane's host (in one of its import directories), or an
    /// http(s) URL.
    #[schema(pattern = "^(/|https?://)")]
    pub source: String,
    pub format: ImageFormat,
    /// Expected SHA-256 of the file, hex; the import fails when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
    /// Smallest boot disk in GB; by default the image's virtual size rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub min_disk_gb: Option<u32>,
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
