//! Catalog reads: regions, zones, instance types, GPU types, images.

use super::{App, Caller, Paging, resource_id};
use stratus_core::catalog::{GpuTypeSpec, InstanceTypeSpec, NamedSpec};
use stratus_core::{Error, Result};
use stratus_store::{Page, PageRequest};
use stratus_types::{
    GpuType, GpuTypeList, InstanceType, InstanceTypeGpu, InstanceTypeList, Region, RegionList,
    Zone, ZoneList,
};
use uuid::Uuid;

/// A stable uid for a catalog entry, derived from its self link.
fn catalog_uid(self_link: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, self_link.as_bytes())
}

/// One page of an in-memory, id-ordered list.
fn page_of<T: Clone>(items: &[T], id_of: fn(&T) -> &str, request: &PageRequest) -> Page<T> {
    let mut matching: Vec<&T> = items
        .iter()
        .filter(|i| request.after.as_deref().is_none_or(|a| id_of(i) > a))
        .collect();
    matching.sort_by(|a, b| id_of(a).cmp(id_of(b)));
    let total = matching.len() as u64;
    let skip = request.offset.unwrap_or(0) as usize;
    let rest: Vec<&T> = matching.into_iter().skip(skip).collect();
    Page {
        more: rest.len() > request.limit as usize,
        items: rest
            .into_iter()
            .take(request.limit as usize)
            .cloned()
            .collect(),
        total: request.with_total.then_some(total),
    }
}

impl App {
    fn region_view(&self) -> Region {
        let self_link = format!("/v1/regions/{}", self.region());
        Region {
            uid: catalog_uid(&self_link),
            id: self.region().to_owned(),
            display_name: self.catalog.region.display_name.clone(),
            description: self.catalog.region.description.clone(),
            zones: self
                .catalog
                .zones
                .iter()
                .map(|z| format!("{self_link}/zones/{}", z.id))
                .collect(),
            self_link,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }

    fn zone_view(&self, z: &NamedSpec) -> Zone {
        let self_link = format!("/v1/regions/{}/zones/{}", self.region(), z.id);
        Zone {
            uid: catalog_uid(&self_link),
            id: z.id.clone(),
            display_name: z.display_name.clone(),
            description: z.description.clone(),
            region: format!("/v1/regions/{}", self.region()),
            self_link,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }

    fn instance_type_view(&self, zone: &str, t: &InstanceTypeSpec) -> InstanceType {
        let zone_link = format!("/v1/regions/{}/zones/{zone}", self.region());
        let self_link = format!("{zone_link}/instance-types/{}", t.id);
        InstanceType {
            uid: catalog_uid(&self_link),
            id: t.id.clone(),
            display_name: t.display_name.clone(),
            description: t.description.clone(),
            vcpus: t.vcpus,
            memory_mb: t.memory_mb,
            gpus: t
                .gpu
                .iter()
                .map(|g| InstanceTypeGpu {
                    gpu_type: format!("{zone_link}/gpu-types/{}", g.gpu_type),
                    count: g.count,
                })
                .collect(),
            baremetal: t.baremetal,
            zone: zone_link,
            self_link,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }

    fn gpu_type_view(&self, zone: &str, g: &GpuTypeSpec) -> GpuType {
        let zone_link = format!("/v1/regions/{}/zones/{zone}", self.region());
        let self_link = format!("{zone_link}/gpu-types/{}", g.id);
        GpuType {
            uid: catalog_uid(&self_link),
            id: g.id.clone(),
            display_name: g.display_name.clone(),
            description: g.description.clone(),
            vendor: g.vendor.clone(),
            memory_gb: g.memory_gb,
            zone: zone_link,
            self_link,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }

    fn zone_spec(&self, region: &str, zone: &str) -> Result<&NamedSpec> {
        self.check_region(region)?;
        self.catalog
            .zone(zone)
            .ok_or_else(|| Error::NotFound(format!("zone {zone} not found in region {region}")))
    }

    pub fn list_regions(&self, _: &Caller, paging: &Paging) -> Result<RegionList> {
        let request = self.pages.page_request(paging, "regions")?;
        let page = page_of(&[self.region_view()], |r| &r.id, &request);
        Ok(RegionList {
            next_page_token: self.next_token(&page, &request, "regions", |r| &r.id),
            regions: page.items,
        })
    }

    pub fn get_region(&self, _: &Caller, region: &str) -> Result<Region> {
        self.check_region(region)?;
        Ok(self.region_view())
    }

    pub fn list_zones(&self, _: &Caller, region: &str, paging: &Paging) -> Result<ZoneList> {
        self.check_region(region)?;
        let request = self.pages.page_request(paging, "zones")?;
        let zones: Vec<Zone> = self
            .catalog
            .zones
            .iter()
            .map(|z| self.zone_view(z))
            .collect();
        let page = page_of(&zones, |z| &z.id, &request);
        Ok(ZoneList {
            next_page_token: self.next_token(&page, &request, "zones", |z| &z.id),
            zones: page.items,
        })
    }

    pub fn get_zone(&self, _: &Caller, region: &str, zone: &str) -> Result<Zone> {
        Ok(self.zone_view(self.zone_spec(region, zone)?))
    }

    pub fn list_instance_types(
        &self,
        _: &Caller,
        region: &str,
        zone: &str,
        paging: &Paging,
    ) -> Result<InstanceTypeList> {
        let zone = self.zone_spec(region, zone)?;
        let key = format!("instance-types:{}", zone.id);
        let request = self.pages.page_request(paging, &key)?;
        let types: Vec<InstanceType> = self
            .catalog
            .instance_types
            .iter()
            .map(|t| self.instance_type_view(&zone.id, t))
            .collect();
        let page = page_of(&types, |t| &t.id, &request);
        Ok(InstanceTypeList {
            next_page_token: self.next_token(&page, &request, &key, |t| &t.id),
            instance_types: page.items,
        })
    }

    pub fn get_instance_type(
        &self,
        _: &Caller,
        region: &str,
        zone: &str,
        id: &str,
    ) -> Result<InstanceType> {
        let zone = self.zone_spec(region, zone)?;
        let t = self
            .catalog
            .instance_type(resource_id("id", id)?.as_str())
            .ok_or_else(|| {
                Error::NotFound(format!("instance type {id} not found in zone {}", zone.id))
            })?;
        Ok(self.instance_type_view(&zone.id, t))
    }

    pub fn list_gpu_types(
        &self,
        _: &Caller,
        region: &str,
        zone: &str,
        paging: &Paging,
    ) -> Result<GpuTypeList> {
        let zone = self.zone_spec(region, zone)?;
        let key = format!("gpu-types:{}", zone.id);
        let request = self.pages.page_request(paging, &key)?;
        let types: Vec<GpuType> = self
            .catalog
            .gpu_types
            .iter()
            .map(|g| self.gpu_type_view(&zone.id, g))
            .collect();
        let page = page_of(&types, |t| &t.id, &request);
        Ok(GpuTypeList {
            next_page_token: self.next_token(&page, &request, &key, |t| &t.id),
            gpu_types: page.items,
        })
    }

    pub fn get_gpu_type(&self, _: &Caller, region: &str, zone: &str, id: &str) -> Result<GpuType> {
        let zone = self.zone_spec(region, zone)?;
        let g = self
            .catalog
            .gpu_type(resource_id("id", id)?.as_str())
            .ok_or_else(|| {
                Error::NotFound(format!("GPU type {id} not found in zone {}", zone.id))
            })?;
        Ok(self.gpu_type_view(&zone.id, g))
    }
}
