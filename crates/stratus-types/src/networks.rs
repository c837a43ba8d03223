//! Networks, their subnets, and addresses (`…/projects/{p}/compute/networks|subnets|addresses`).

use crate::names::ResourceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A network of a project: its own layer-2 domain and routing context, so two networks may
/// use the same CIDR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    /// The network's IPv4 range (private, /8 to /29); it cannot change.
    pub cidr: String,
    /// Its subnets (made by the system: one per network).
    pub subnets: Vec<Subnet>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/compute/networks`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkCreateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A private IPv4 CIDR, e.g. `10.1.0.0/16`.
    #[schema(pattern = r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
    pub cidr: String,
}

/// Body of `PATCH …/compute/networks/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET …/compute/networks` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkList {
    pub networks: Vec<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A subnet of a network (read-only: the system makes one per network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    #[schema(format = "uri-reference")]
    pub network: String,
    pub ipv4_cidr: String,
    /// A unique-local /64.
    pub ipv6_cidr: String,
    /// The gateway's address (extension).
    pub gateway_address: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET …/compute/subnets` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetList {
    pub subnets: Vec<Subnet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Where an address lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddressType {
    /// From the region's external pool.
    #[default]
    External,
    /// From a subnet of one of the project's networks.
    Internal,
}

impl AddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::External => "EXTERNAL",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "EXTERNAL" => Some(Self::External),
            "INTERNAL" => Some(Self::Internal),
            _ => None,
        }
    }
}

/// An address's IP version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IpVersion {
    #[default]
    Ipv4,
    Ipv6,
}

/// An address reserved in a project (IPAM).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[schema(format = "uri-reference")]
    pub self_link: String,
    pub uid: Uuid,
    pub id: ResourceId,
    pub display_name: String,
    pub description: String,
    pub ip_address: String,
    pub ip_version: IpVersion,
    pub address_type: AddressType,
    /// INTERNAL addresses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub network: Option<String>,
    /// INTERNAL addresses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub subnetwork: Option<String>,
    /// `RESERVED`, or `IN_USE` while a NIC of an instance has it.
    pub status: String,
    /// The instance whose NIC has it (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub user: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST …/compute/addresses`: nothing is required; an INTERNAL address needs its
/// `network` or `subnetwork`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressAllocateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A particular address (INTERNAL only); the next free one otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^\d{1,3}(\.\d{1,3}){3}$")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<IpVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<AddressType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri-reference")]
    pub subnetwork: Option<String>,
}

/// `GET …/compute/addresses` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressList {
    pub addresses: Vec<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
