//! What the region's operators see and steer of its hosts: capacity and what is allocated,
//! whether the agent is up, and whether placement may use the host.
//!
//! Cordoning a host keeps new instances off it; the instances on it stay and run. Draining
//! cordons it and lists the instances still on it, for the operator to stop, delete or recreate
//! elsewhere (Stratus moves no running guest by itself); once none is left it shows as
//! `DRAINED` and can be serviced. Uncordoning makes it schedulable again. A host keeps this
//! setting when its agent restarts and registers again.

use super::{App, Caller, Permission, resource_id};
use std::collections::HashMap;
use stratus_core::placement::HostUsage;
use stratus_core::{Error, Result};
use stratus_store::HostRecord;
use stratus_types::{
    Gpu, Host, HostAction, HostInstance, HostList, HostName, HostResources, HostScheduling,
    HostStatus, ResourceId,
};

impl App {
    /// Every host of `zone`, by name.
    pub async fn list_hosts(&self, caller: &Caller, region: &str, zone: &str) -> Result<HostList> {
        caller.principal.authorize_here(Permission::HostsList)?;
        let zone = self.zone_here(region, zone)?;
        let usage = self.usage_by_host().await?;
        let mut hosts: Vec<HostRecord> = self
            .store
            .list_hosts()
            .await?
            .into_iter()
            .filter(|h| h.zone == zone.as_str())
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut views = Vec::with_capacity(hosts.len());
        for host in &hosts {
            let draining = host.scheduling == "DRAINING";
            views.push(self.host_view(host, usage.get(&host.id), draining).await?);
        }
        Ok(HostList { hosts: views })
    }

    /// One host of `zone`, with the instances on it.
    pub async fn get_host(
        &self,
        caller: &Caller,
        region: &str,
        zone: &str,
        name: &str,
    ) -> Result<Host> {
        caller.principal.authorize_here(Permission::HostsGet)?;
        let host = self.host_here(region, zone, name).await?;
        let usage = self.usage_by_host().await?;
        self.host_view(&host, usage.get(&host.id), true).await
    }

    /// `:cordon`, `:uncordon` or `:drain`.
    pub async fn act_on_host(
        &self,
        caller: &Caller,
        region: &str,
        zone: &str,
        name: &str,
        action: HostAction,
    ) -> Result<Host> {
        caller.principal.authorize_here(Permission::HostsUpdate)?;
        let host = self.host_here(region, zone, name).await?;
        let scheduling = match action {
            HostAction::Cordon => "CORDONED",
            HostAction::Uncordon => "SCHEDULABLE",
            HostAction::Drain => "DRAINING",
        };
        let stored = self
            .store
            .set_host_scheduling(host.id, scheduling)
            .await?
            .ok_or_else(|| Error::NotFound(format!("host {name} not found in zone {zone}")))?;
        tracing::info!(
            host = %stored.name,
            scheduling,
            request_id = caller.request_id,
            "host scheduling set"
        );
        let usage = self.usage_by_host().await?;
        self.host_view(&stored, usage.get(&stored.id), true).await
    }

    /// `zone` if it is a zone of this region.
    fn zone_here(&self, region: &str, zone: &str) -> Result<ResourceId> {
        self.check_region(region)?;
        let zone = resource_id("zone", zone)?;
        if self.catalog.zone(zone.as_str()).is_none() {
            return Err(Error::NotFound(format!(
                "zone {zone} does not exist in region {region}"
            )));
        }
        Ok(zone)
    }

    async fn host_here(&self, region: &str, zone: &str, name: &str) -> Result<HostRecord> {
        let zone = self.zone_here(region, zone)?;
        HostName::parse(name).map_err(|e| Error::invalid("host", e))?;
        self.store
            .list_hosts()
            .await?
            .into_iter()
            .find(|h| h.name == name && h.zone == zone.as_str())
            .ok_or_else(|| Error::NotFound(format!("host {name} not found in zone {zone}")))
    }

    async fn usage_by_host(&self) -> Result<HashMap<uuid::Uuid, HostUsage>> {
        Ok(self
            .store
            .host_usage()
            .await?
            .into_iter()
            .map(|u| (u.host_id, u))
            .collect())
    }

    async fn host_view(
        &self,
        host: &HostRecord,
        usage: Option<&HostUsage>,
        with_instances: bool,
    ) -> Result<Host> {
        let region = self.region();
        let gpus = |gpus: &[(String, u32)]| -> Vec<Gpu> {
            gpus.iter()
                .map(|(gpu_type, count)| Gpu {
                    gpu_type: format!(
                        "/v1/regions/{region}/zones/{}/gpu-types/{gpu_type}",
                        host.zone
                    ),
                    count: *count,
                })
                .collect()
        };
        let instance_count = usage.map_or(0, |u| u64::from(u.instances));
        let instances = if with_instances {
            let mut placed = self.store.list_assignments_on_host(host.id).await?;
            placed.sort_by(|(a, _), (b, _)| (&a.project, &a.id).cmp(&(&b.project, &b.id)));
            Some(
                placed
                    .into_iter()
                    .map(|(r, _)| HostInstance {
                        self_link: self.instance_self_link(&r.project, &r.id),
                        project: ResourceId::parse(&r.project).expect("stored ids are valid"),
                        id: ResourceId::parse(&r.id).expect("stored ids are valid"),
                        status: r.status,
                    })
                    .collect(),
            )
        } else {
            None
        };
        let live_since = chrono::Utc::now()
            - chrono::Duration::from_std(self.config.host_timeout).unwrap_or_default();
        let heartbeat = host.last_seen_at;
        Ok(Host {
            self_link: format!(
                "/v1/regions/{region}/zones/{}/hosts/{}",
                host.zone, host.name
            ),
            uid: host.id,
            id: host.name.clone(),
            zone: ResourceId::parse(&host.zone).expect("stored zones are valid"),
            driver: host.driver.clone(),
            accelerator: host.accelerator.clone(),
            agent_version: host.agent_version.clone(),
            status: if heartbeat >= live_since {
                HostStatus::Up
            } else {
                HostStatus::Down
            },
            scheduling: match host.scheduling.as_str() {
                "CORDONED" => HostScheduling::Cordoned,
                "DRAINING" if instance_count == 0 => HostScheduling::Drained,
                "DRAINING" => HostScheduling::Draining,
                _ => HostScheduling::Schedulable,
            },
            capacity: HostResources {
                vcpus: u64::from(host.vcpus),
                memory_mb: host.memory_mb,
                gpus: gpus(&host.gpus),
            },
            allocated: HostResources {
                vcpus: usage.map_or(0, |u| u64::from(u.used_vcpus)),
                memory_mb: usage.map_or(0, |u| u.used_memory_mb),
                gpus: gpus(usage.map_or(&[][..], |u| &u.used_gpus)),
            },
            instance_count,
            instances,
            registered_at: host.registered_at,
            last_heartbeat_at: heartbeat,
        })
    }
}

impl App {
    /// Sets the gauges that describe the region as it is, for a metrics scrape: instances by
    /// status and host, each host's capacity, allocation, health and scheduling, and the
    /// database's connection pools. Every combination is set, zeros included, so a count that
    /// dropped to nothing does not linger at its last value.
    pub async fn record_gauges(&self) -> Result<()> {
        let hosts = self.store.list_hosts().await?;
        let usage = self.usage_by_host().await?;
        let counts = self.store.count_instances_by_status_and_host().await?;
        let name_of = |id: Option<uuid::Uuid>| {
            id.and_then(|id| hosts.iter().find(|h| h.id == id))
                .map_or_else(|| "none".to_owned(), |h| h.name.clone())
        };
        let mut names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        names.push("none".into());
        for status in stratus_types::InstanceStatus::ALL {
            for host in &names {
                let n: u64 = counts
                    .iter()
                    .filter(|(s, h, _)| *s == status && name_of(*h) == *host)
                    .map(|(_, _, n)| n)
                    .sum();
                metrics::gauge!("stratus_instances", "status" => status.as_str(), "host" => host.clone())
                    .set(n as f64);
            }
        }
        let live_since = chrono::Utc::now()
            - chrono::Duration::from_std(self.config.host_timeout).unwrap_or_default();
        for host in &hosts {
            let used = usage.get(&host.id);
            let name = host.name.clone();
            let pairs = [
                ("stratus_host_vcpus", "capacity", f64::from(host.vcpus)),
                (
                    "stratus_host_vcpus",
                    "allocated",
                    used.map_or(0.0, |u| f64::from(u.used_vcpus)),
                ),
                (
                    "stratus_host_memory_bytes",
                    "capacity",
                    host.memory_mb as f64 * 1048576.0,
                ),
                (
                    "stratus_host_memory_bytes",
                    "allocated",
                    used.map_or(0.0, |u| u.used_memory_mb as f64 * 1048576.0),
                ),
            ];
            for (metric, state, value) in pairs {
                metrics::gauge!(metric, "host" => name.clone(), "state" => state).set(value);
            }
            for (gpu_type, count) in &host.gpus {
                let allocated = used
                    .and_then(|u| u.used_gpus.iter().find(|(t, _)| t == gpu_type))
                    .map_or(0, |(_, n)| *n);
                for (state, value) in [("capacity", *count), ("allocated", allocated)] {
                    metrics::gauge!("stratus_host_gpus", "host" => name.clone(), "gpu_type" => gpu_type.clone(), "state" => state)
                        .set(f64::from(value));
                }
            }
            let up = host.last_seen_at >= live_since;
            metrics::gauge!("stratus_host_up", "host" => name.clone()).set(if up {
                1.0
            } else {
                0.0
            });
            let schedulable = host.scheduling == "SCHEDULABLE";
            metrics::gauge!("stratus_host_schedulable", "host" => name).set(if schedulable {
                1.0
            } else {
                0.0
            });
        }
        self.store.record_pool_metrics();
        Ok(())
    }
}
