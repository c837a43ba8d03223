//! The catalog of a region: zones, instance types, GPU types and images; and its hosts, for
//! its operators.

use crate::{Client, Result, segment};
use reqwest::Method;
use stratus_types::{
    GpuTypeList, Host, HostAction, HostList, Image, ImageCreateRequest, ImageList, InstanceType,
    InstanceTypeList, Region, RegionList, ZoneList,
};

impl Client {
    /// The regions this endpoint serves (`GET /v1/regions`).
    pub async fn list_regions(&self) -> Result<RegionList> {
        self.send(self.request(Method::GET, "/v1/regions")).await
    }
}

/// The catalog of one region; made by [`Client::catalog`].
pub struct Catalog<'a> {
    client: &'a Client,
    region: String,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(client: &'a Client, region: &str) -> Self {
        Self {
            client,
            region: format!("/v1/regions/{}", segment(region)),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let request = self.client.request(Method::GET, path);
        self.client.send(request).await
    }

    /// This region.
    pub async fn region(&self) -> Result<Region> {
        self.get(&self.region).await
    }

    /// The zones of this region.
    pub async fn zones(&self) -> Result<ZoneList> {
        self.get(&format!("{}/zones", self.region)).await
    }

    /// The instance types offered in `zone`.
    pub async fn instance_types(&self, zone: &str) -> Result<InstanceTypeList> {
        self.get(&format!(
            "{}/zones/{}/instance-types",
            self.region,
            segment(zone)
        ))
        .await
    }

    /// One instance type of `zone`.
    pub async fn instance_type(&self, zone: &str, id: &str) -> Result<InstanceType> {
        self.get(&format!(
            "{}/zones/{}/instance-types/{}",
            self.region,
            segment(zone),
            segment(id)
        ))
        .await
    }

    /// The GPU types offered in `zone`.
    pub async fn gpu_types(&self, zone: &str) -> Result<GpuTypeList> {
        self.get(&format!(
            "{}/zones/{}/gpu-types",
            self.region,
            segment(zone)
        ))
        .await
    }

    /// The images of this region, with their import status.
    pub async fn images(&self) -> Result<ImageList> {
        self.get(&format!("{}/compute/images", self.region)).await
    }

    /// One image by id.
    pub async fn image(&self, id: &str) -> Result<Image> {
        self.get(&format!("{}/compute/images/{}", self.region, segment(id)))
            .await
    }

    /// Registers an image to import (administrators); it starts `PENDING`.
    pub async fn create_image(&self, body: &ImageCreateRequest) -> Result<Image> {
        let path = format!("{}/compute/images", self.region);
        let request = self.client.request(Method::POST, &path).json(body);
        self.client.send(request).await
    }

    /// Deletes an image (administrators).
    pub async fn delete_image(&self, id: &str) -> Result<()> {
        let path = format!("{}/compute/images/{}", self.region, segment(id));
        let request = self.client.request(Method::DELETE, &path);
        self.client.send_empty(request).await
    }

    /// The hosts of `zone` (the region's operators).
    pub async fn hosts(&self, zone: &str) -> Result<HostList> {
        self.get(&format!("{}/zones/{}/hosts", self.region, segment(zone)))
            .await
    }

    /// One host of `zone`, with the instances on it (the region's operators).
    pub async fn host(&self, zone: &str, name: &str) -> Result<Host> {
        self.get(&format!(
            "{}/zones/{}/hosts/{}",
            self.region,
            segment(zone),
            segment(name)
        ))
        .await
    }

    /// `:cordon`, `:uncordon` or `:drain` a host (the region's operators).
    pub async fn host_action(&self, zone: &str, name: &str, action: HostAction) -> Result<Host> {
        let verb = match action {
            HostAction::Cordon => "cordon",
            HostAction::Uncordon => "uncordon",
            HostAction::Drain => "drain",
        };
        let path = format!(
            "{}/zones/{}/hosts/{}:{verb}",
            self.region,
            segment(zone),
            segment(name)
        );
        let request = self.client.request(Method::POST, &path);
        self.client.send(request).await
    }
}
