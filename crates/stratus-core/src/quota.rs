//! Quotas: how much of the region an organization may hold.
//!
//! A quota is a named limit on one amount an organization's instances hold. The names are the
//! contract's (`cpuCores`, `ramGb`, `gpuCount`, `storageTb`, `clusterCount`) and ours
//! (`instanceCount`, `diskGb`, and `gpuCountByType.<type>` for one GPU type). A limit that is
//! not set is unlimited.
//!
//! **What counts.** Every instance that is not being deleted counts for `instanceCount`,
//! `diskGb` and `storageTb`: its disks exist whether it runs or not. Only instances meant to run
//! (desired `RUNNING` or `SUSPENDED`) count for cores, memory and GPUs, so stopping an instance
//! gives those back and `:start` must get them again. A deleted instance stops counting at
//! once, before its host has cleaned up.
//!
//! **Units.** `ramGb` counts GiB of `memoryMb` (1,024 MB) and `storageTb` TiB of disk `sizeGb`
//! (1,024 GB); the check compares the exact amounts, and usage is shown rounded up.
//!
//! **When it is checked.** Inside the transaction that creates an instance, or that starts a
//! stopped one, after the organization's row is locked: concurrent requests of one
//! organization queue there, so the sum they see includes every one admitted before and no
//! number of concurrent requests can exceed a limit. A request is refused only for the
//! quotas it would add to, so lowering a limit below what is in use blocks growth without
//! blocking anything else.
//!
//! **Where limits come from.** The region's configuration gives defaults for every
//! organization; an operator overrides any of them per organization (a number, or unlimited),
//! and an override left out follows the default.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The quotas every organization has, by name (GPU types come on top, as `gpuCountByType.<t>`).
pub const NAMES: &[&str] = &[
    "cpuCores",
    "ramGb",
    "gpuCount",
    "storageTb",
    "clusterCount",
    "instanceCount",
    "diskGb",
];

/// The prefix of a quota on one GPU type.
pub const GPU_TYPE_PREFIX: &str = "gpuCountByType.";

/// Whether `name` names a quota.
pub fn is_quota(name: &str) -> bool {
    NAMES.contains(&name)
        || name
            .strip_prefix(GPU_TYPE_PREFIX)
            .is_some_and(|t| stratus_types::ResourceId::parse(t).is_ok())
}

/// Whether an instance with owner's intent `desired` holds cores, memory and GPUs (the store's
/// usage queries name the same states).
pub fn holds_running_share(desired: stratus_types::DesiredState) -> bool {
    use stratus_types::DesiredState::*;
    matches!(desired, Running | Suspended)
}

/// Limits by quota name; a quota that is absent is unlimited.
pub type Limits = BTreeMap<String, u64>;

/// An organization's own settings by quota name: a limit, or `None` for unlimited. A quota that
/// is absent follows the region's default.
pub type Overrides = BTreeMap<String, Option<u64>>;

/// The limits in force: the defaults, with the overrides on top.
pub fn effective(defaults: &Limits, overrides: &Overrides) -> Limits {
    let mut limits = defaults.clone();
    for (name, limit) in overrides {
        match limit {
            Some(n) => limits.insert(name.clone(), *n),
            None => limits.remove(name),
        };
    }
    limits
}

/// Amounts held (or asked for), in the units instances are described in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub instances: u64,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub gpus: u64,
    pub gpus_by_type: BTreeMap<String, u64>,
    pub disk_gb: u64,
    pub clusters: u64,
}

/// How many of an amount's units make one unit of the quota.
fn scale(name: &str) -> u64 {
    match name {
        "ramGb" | "storageTb" => 1024,
        _ => 1,
    }
}

impl Amounts {
    /// What one instance holds once running.
    pub fn of_instance(vcpus: u32, memory_mb: u64, gpu: Option<(&str, u32)>, disk_gb: u64) -> Self {
        let mut amounts = Self {
            instances: 1,
            vcpus: u64::from(vcpus),
            memory_mb,
            disk_gb,
            ..Self::default()
        };
        if let Some((gpu_type, count)) = gpu.filter(|g| g.1 > 0) {
            amounts.gpus = u64::from(count);
            amounts
                .gpus_by_type
                .insert(gpu_type.to_owned(), u64::from(count));
        }
        amounts
    }

    /// Only what an instance that exists but does not run holds: its place and its disks.
    pub fn at_rest(&self) -> Self {
        Self {
            instances: self.instances,
            disk_gb: self.disk_gb,
            ..Self::default()
        }
    }

    /// Only what running takes on top of existing: cores, memory and GPUs.
    pub fn running_part(&self) -> Self {
        Self {
            instances: 0,
            disk_gb: 0,
            ..self.clone()
        }
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Amounts) {
        self.instances += other.instances;
        self.vcpus += other.vcpus;
        self.memory_mb += other.memory_mb;
        self.gpus += other.gpus;
        self.disk_gb += other.disk_gb;
        self.clusters += other.clusters;
        for (gpu_type, n) in &other.gpus_by_type {
            *self.gpus_by_type.entry(gpu_type.clone()).or_default() += n;
        }
    }

    /// The amount quota `name` measures, in the amount's own units.
    pub fn raw(&self, name: &str) -> u64 {
        match name {
            "cpuCores" => self.vcpus,
            "ramGb" => self.memory_mb,
            "gpuCount" => self.gpus,
            "storageTb" | "diskGb" => self.disk_gb,
            "clusterCount" => self.clusters,
            "instanceCount" => self.instances,
            other => other
                .strip_prefix(GPU_TYPE_PREFIX)
                .and_then(|t| self.gpus_by_type.get(t).copied())
                .unwrap_or(0),
        }
    }

    /// The amount quota `name` measures, in the quota's units, rounded up.
    pub fn in_quota_units(&self, name: &str) -> u64 {
        self.raw(name).div_ceil(scale(name))
    }
}

/// A request that would take an organization past one of its quotas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub organization: String,
    pub quota: String,
    pub limit: u64,
    /// Held before the request, in the quota's units (rounded up).
    pub usage: String,
    /// Asked for, in the quota's units.
    pub requested: String,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota {} of organization {} is {}: {} in use, this request needs {} more",
            self.quota, self.organization, self.limit, self.usage, self.requested
        )
    }
}

/// `raw` amount units of quota `name` written in the quota's units, with up to two decimals.
fn in_units(name: &str, raw: u64) -> String {
    let scale = scale(name);
    if raw.is_multiple_of(scale) {
        (raw / scale).to_string()
    } else {
        let text = format!("{:.2}", raw as f64 / scale as f64);
        text.trim_end_matches('0').to_owned()
    }
}

/// Admits `request` on top of `usage` under `limits`, or names the first quota it would exceed.
pub fn admit(
    organization: &str,
    limits: &Limits,
    usage: &Amounts,
    request: &Amounts,
) -> Result<(), Error> {
    for (name, limit) in limits {
        let asked = request.raw(name);
        if asked == 0 {
            continue;
        }
        let held = usage.raw(name);
        if held.saturating_add(asked) > limit.saturating_mul(scale(name)) {
            return Err(Error::QuotaExceeded(Box::new(Exceeded {
                organization: organization.to_owned(),
                quota: name.clone(),
                limit: *limit,
                usage: in_units(name, held),
                requested: in_units(name, asked),
            })));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, u64)]) -> Limits {
        pairs.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    #[test]
    fn overrides_replace_defaults_and_none_lifts_a_limit() {
        let defaults = limits(&[("cpuCores", 8), ("instanceCount", 10)]);
        let overrides: Overrides = [
            ("cpuCores".to_string(), Some(32)),
            ("instanceCount".to_string(), None),
            ("ramGb".to_string(), Some(64)),
        ]
        .into();
        assert_eq!(
            effective(&defaults, &overrides),
            limits(&[("cpuCores", 32), ("ramGb", 64)])
        );
    }

    #[test]
    fn a_request_fits_up_to_the_limit_and_not_beyond() {
        let limits = limits(&[("cpuCores", 8), ("ramGb", 16)]);
        let one = Amounts::of_instance(4, 8 * 1024, None, 10);
        let mut usage = Amounts::default();
        admit("acme", &limits, &usage, &one).unwrap();
        usage.vcpus = 4;
        usage.memory_mb = 8 * 1024;
        admit("acme", &limits, &usage, &one).unwrap();
        usage.vcpus = 5;
        let Err(Error::QuotaExceeded(e)) = admit("acme", &limits, &usage, &one) else {
            panic!("admitted past the cores quota");
        };
        assert_eq!((e.quota.as_str(), e.limit), ("cpuCores", 8));
        assert_eq!((e.usage.as_str(), e.requested.as_str()), ("5", "4"));
    }

    #[test]
    fn memory_is_compared_exactly_and_shown_in_gib() {
        let limits = limits(&[("ramGb", 1)]);
        let usage = Amounts {
            memory_mb: 512,
            ..Amounts::default()
        };
        let Err(Error::QuotaExceeded(e)) = admit(
            "acme",
            &limits,
            &usage,
            &Amounts::of_instance(1, 768, None, 0),
        ) else {
            panic!("1.25 GiB admitted under 1 GiB");
        };
        assert_eq!((e.usage.as_str(), e.requested.as_str()), ("0.5", "0.75"));
        assert_eq!(usage.in_quota_units("ramGb"), 1);
    }

    #[test]
    fn a_quota_already_exceeded_blocks_only_what_adds_to_it() {
        let limits = limits(&[("gpuCount", 0), ("gpuCountByType.h100", 1)]);
        let usage = Amounts::default();
        admit(
            "acme",
            &limits,
            &usage,
            &Amounts::of_instance(2, 1024, None, 10),
        )
        .unwrap();
        assert!(
            admit(
                "acme",
                &limits,
                &usage,
                &Amounts::of_instance(2, 1024, Some(("h100", 1)), 10)
            )
            .is_err()
        );
        let by_type = self::limits(&[("gpuCountByType.h100", 1)]);
        admit(
            "acme",
            &by_type,
            &usage,
            &Amounts::of_instance(2, 1024, Some(("a10", 4)), 10),
        )
        .unwrap();
        assert!(
            admit(
                "acme",
                &by_type,
                &usage,
                &Amounts::of_instance(2, 1024, Some(("h100", 2)), 10)
            )
            .is_err()
        );
    }

    #[test]
    fn quota_names_are_known() {
        assert!(is_quota("cpuCores"));
        assert!(is_quota("gpuCountByType.h100"));
        assert!(!is_quota("gpuCountByType."));
        assert!(!is_quota("cores"));
    }
}
