//! The catalog a region offers (zones, instance types, GPU types, images) and the reading of
//! the URIs by which instances reference it.
//!
//! References in the contract are relative URIs (`/v1/regions/local-1/zones/local-1a/instance-types/e2-small`).
//! A client may also send the absolute form with a scheme and host; only the path counts.

use crate::Error;
use serde::{Deserialize, Serialize};

/// Region, zones and offerings, as configured (or the built-in default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Catalog {
    pub region: RegionSpec,
    pub zones: Vec<NamedSpec>,
    pub instance_types: Vec<InstanceTypeSpec>,
    #[serde(default)]
    pub gpu_types: Vec<GpuTypeSpec>,
    #[serde(default)]
    pub images: Vec<ImageSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegionSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NamedSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

/// An instance type, offered in every zone of the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstanceTypeSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// GPU type id and count that come with the type.
    #[serde(default)]
    pub gpu: Option<GpuCount>,
    #[serde(default)]
    pub baremetal: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GpuCount {
    #[serde(rename = "type")]
    pub gpu_type: String,
    pub count: u32,
}

/// A GPU type, offered in every zone of the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GpuTypeSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub vendor: String,
    pub memory_gb: u32,
}

/// An image known to the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSpec {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub os: String,
    /// `qcow2` or `raw`.
    pub format: String,
    pub size_bytes: u64,
    pub min_disk_gb: u32,
    /// Where hosts find the image file (used by the `qemu` driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The source of an image Stratus builds itself from Debian's packages: `build:{id}`.
pub const BUILD_SOURCE_PREFIX: &str = "build:";

/// Images Stratus can build itself from Debian's packages (`[images] build`), as they are
/// registered before their build.
pub fn buildable_images() -> Vec<ImageSpec> {
    vec![ImageSpec {
        id: "debian-12".into(),
        display_name: "Debian 12 (bookworm)".into(),
        description: "Debian's packages with cloud-init, openssh-server, sudo and growpart; \
                      log in as `debian` with the instance's ssh-keys"
            .into(),
        os: "debian".into(),
        format: "raw".into(),
        size_bytes: 0,
        min_disk_gb: 2,
        file: None,
    }]
}

impl Catalog {
    /// The built-in catalog: region `local-1`, zone `local-1a`, four VM instance types and a
    /// bare-metal one (`bm1-small`: any ready server with at least one CPU and 512 MB), one GPU
    /// type and the `stratus-guest` image (whose file `serve` builds when it runs real guests).
    pub fn builtin() -> Self {
        let t = |id: &str, vcpus, memory_mb, gpu: Option<(&str, u32)>, description: &str| {
            InstanceTypeSpec {
                id: id.into(),
                display_name: id.into(),
                description: description.into(),
                vcpus,
                memory_mb,
                gpu: gpu.map(|(t, n)| GpuCount {
                    gpu_type: t.into(),
                    count: n,
                }),
                baremetal: false,
            }
        };
        Catalog {
            region: RegionSpec {
                id: "local-1".into(),
                display_name: "Local region".into(),
                description: "The region served by this Stratus deployment".into(),
            },
            zones: vec![NamedSpec {
                id: "local-1a".into(),
                display_name: "Local zone A".into(),
                description: String::new(),
            }],
            instance_types: vec![
                t("e2-micro", 1, 1024, None, "1 vCPU, 1 GB"),
                t("e2-small", 2, 2048, None, "2 vCPUs, 2 GB"),
                t("e2-standard-4", 4, 16384, None, "4 vCPUs, 16 GB"),
                t(
                    "g1-xlarge",
                    8,
                    65536,
                    Some(("nvidia-h100", 1)),
                    "8 vCPUs, 64 GB, 1 H100",
                ),
                InstanceTypeSpec {
                    baremetal: true,
                    ..t(
                        "bm1-small",
                        1,
                        512,
                        None,
                        "a whole bare-metal server with at least 1 CPU and 512 MB",
                    )
                },
            ],
            gpu_types: vec![GpuTypeSpec {
                id: "nvidia-h100".into(),
                display_name: "NVIDIA H100 80GB".into(),
                description: String::new(),
                vendor: "NVIDIA".into(),
                memory_gb: 80,
            }],
            images: vec![ImageSpec {
                id: "stratus-guest".into(),
                display_name: "Stratus guest".into(),
                description: "A small guest built from Debian packages (cloud kernel, busybox): \
                              it prints the metadata it reads on its serial console"
                    .into(),
                os: "busybox".into(),
                format: "raw".into(),
                size_bytes: 64 * 1024 * 1024,
                min_disk_gb: 1,
                file: None,
            }],
        }
    }

    pub fn zone(&self, id: &str) -> Option<&NamedSpec> {
        self.zones.iter().find(|z| z.id == id)
    }

    pub fn instance_type(&self, id: &str) -> Option<&InstanceTypeSpec> {
        self.instance_types.iter().find(|t| t.id == id)
    }

    pub fn gpu_type(&self, id: &str) -> Option<&GpuTypeSpec> {
        self.gpu_types.iter().find(|t| t.id == id)
    }

    pub fn image(&self, id: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|t| t.id == id)
    }

    /// Checks the catalog for contradictions a config file could bring.
    pub fn validate(&self) -> Result<(), String> {
        if self.region.id == "global" {
            return Err("region id `global` is reserved".into());
        }
        if self.zones.is_empty() {
            return Err("the catalog needs at least one zone".into());
        }
        for t in &self.instance_types {
            if let Some(g) = &t.gpu
                && self.gpu_type(&g.gpu_type).is_none()
            {
                return Err(format!(
                    "instance type {} names unknown GPU type {}",
                    t.id, g.gpu_type
                ));
            }
        }
        for i in &self.images {
            if !matches!(i.format.as_str(), "qcow2" | "raw") {
                return Err(format!(
                    "image {} has format {}; use qcow2 or raw",
                    i.id, i.format
                ));
            }
        }
        Ok(())
    }
}

/// The path part of a reference, with the scheme and host of an absolute URL removed.
fn reference_path(uri: &str) -> &str {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            return rest.find('/').map_or("", |i| &rest[i..]);
        }
    }
    uri
}

/// Matches `uri` against a pattern like `/v1/regions/{}/zones/{}/instance-types/{}` and returns
/// the values in place of the `{}`; the error names `field` and shows the expected shape.
pub fn parse_reference<'a>(
    field: &str,
    uri: &'a str,
    pattern: &str,
) -> Result<Vec<&'a str>, Error> {
    let malformed = || {
        Error::invalid(
            field,
            format!(
                "{uri:?} is not a URI of the form {}",
                pattern.replace("{}", "…")
            ),
        )
    };
    let path = reference_path(uri);
    let got: Vec<&str> = path.split('/').collect();
    let want: Vec<&str> = pattern.split('/').collect();
    if got.len() != want.len() {
        return Err(malformed());
    }
    let mut values = Vec::new();
    for (g, w) in got.iter().zip(&want) {
        if *w == "{}" {
            if g.is_empty() {
                return Err(malformed());
            }
            values.push(*g);
        } else if g != w {
            return Err(malformed());
        }
    }
    Ok(values)
}

pub const INSTANCE_TYPE_REF: &str = "/v1/regions/{}/zones/{}/instance-types/{}";
pub const GPU_TYPE_REF: &str = "/v1/regions/{}/zones/{}/gpu-types/{}";
pub const IMAGE_REF: &str = "/v1/regions/{}/compute/images/{}";
pub const NETWORK_REF: &str = "/v1/regions/{}/projects/{}/compute/networks/{}";
pub const SUBNET_REF: &str = "/v1/regions/{}/projects/{}/compute/subnets/{}";
/// The URI of an address of a project.
pub const ADDRESS_REF: &str = "/v1/regions/{}/projects/{}/compute/addresses/{}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_accept_relative_and_absolute_forms() {
        let v = parse_reference(
            "type",
            "/v1/regions/local-1/zones/local-1a/instance-types/e2-small",
            INSTANCE_TYPE_REF,
        )
        .unwrap();
        assert_eq!(v, ["local-1", "local-1a", "e2-small"]);
        let v = parse_reference(
            "type",
            "https://api.example.com/v1/regions/r/zones/z/instance-types/t",
            INSTANCE_TYPE_REF,
        )
        .unwrap();
        assert_eq!(v, ["r", "z", "t"]);
    }

    #[test]
    fn malformed_references_name_the_field_and_the_shape() {
        for bad in [
            "e2-small",
            "/v1/regions/r/zones/z/types/t",
            "/v1/regions//zones/z/instance-types/t",
            "",
        ] {
            let Error::InvalidArgument { fields, .. } =
                parse_reference("type", bad, INSTANCE_TYPE_REF).unwrap_err()
            else {
                panic!("want InvalidArgument")
            };
            assert_eq!(fields[0].field, "type");
            assert!(fields[0].description.contains("instance-types"));
        }
    }

    #[test]
    fn the_builtin_catalog_is_consistent() {
        Catalog::builtin().validate().unwrap();
    }
}
