//! Operations host agents call: register, poll assignments, report, upload serial output.

use super::{App, now};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use stratus_core::{Error, Result};
use stratus_store::{HostRegistrationRecord, InstanceRecord};
use stratus_types::DesiredState;
use stratus_types::agent::{
    Assignment, AssignmentBatch, AssignmentCursor, HostRegistration, OverlayPeer, ReportOutcome,
    Reported, ReportedRecord, StatusReport, VmNic, VmSpec,
};
use uuid::Uuid;

/// An instance as its host polls it (its record read without metadata), with the digest of its
/// metadata and its NICs as the host plumbs them.
fn assignment((r, metadata_digest): (InstanceRecord, String), nics: Vec<VmNic>) -> Assignment {
    Assignment {
        spec: VmSpec {
            uid: r.uid,
            project: r.project.clone(),
            id: r.id.clone(),
            hostname: r.spec.hostname.clone(),
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            gpus: r.gpu_count,
            disks: r.spec.disks.clone(),
            metadata: Vec::new(),
            nics,
        },
        desired: r.desired,
        status: r.status,
        generation: r.generation,
        metadata_digest,
        traceparent: r.traceparent,
        request_id: r.request_id,
    }
}

/// A subnet as hosts need it: its network's VNI and its CIDR.
type SubnetPlumbing = (u32, ipnet::Ipv4Net);

/// The subnets of the NICs of instances sent to hosts lately, by instance uid, network and
/// subnet, so that the polls which carry an instance after each of its steps do not read them
/// again. What is kept never goes stale: a NIC's network and subnet cannot be deleted while
/// its instance lives (the store refuses), and neither their VNI nor their CIDR ever changes;
/// the instance's uid in the key keeps a network made again under the same name, for another
/// instance, from being taken for the old one. At most [`KEPT_PLUMBING`] NICs, then it
/// starts over.
#[derive(Default)]
pub(crate) struct KeptPlumbing(std::sync::Mutex<HashMap<(Uuid, String, String), SubnetPlumbing>>);

/// NICs whose plumbing is kept.
const KEPT_PLUMBING: usize = 4096;

impl KeptPlumbing {
    fn get(&self, key: &(Uuid, String, String)) -> Option<SubnetPlumbing> {
        self.0.lock().unwrap().get(key).copied()
    }

    fn keep(&self, key: (Uuid, String, String), plumbing: SubnetPlumbing) {
        let mut kept = self.0.lock().unwrap();
        if kept.len() >= KEPT_PLUMBING {
            kept.clear();
        }
        kept.insert(key, plumbing);
    }
}

impl App {
    /// How often a polling agent's liveness is written to the store: five times within the
    /// time after which a silent host counts as down (every 3 s by default), so a thousand
    /// hosts do not write a thousand rows a second.
    fn heartbeat_every(&self) -> Duration {
        (self.config.host_timeout / 5).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The NICs of `instance` as its host plumbs them; `subnets` caches what was looked up.
    async fn vm_nics(
        &self,
        instance: &InstanceRecord,
        subnets: &mut HashMap<(String, String, String), Option<SubnetPlumbing>>,
    ) -> Result<Vec<VmNic>> {
        let mut nics = Vec::with_capacity(instance.spec.nics.len());
        for nic in &instance.spec.nics {
            let (Some(network), Some(subnet), Some(ipv4)) =
                (&nic.network, &nic.subnet, &nic.ipv4_address)
            else {
                continue;
            };
            let kept_key = (instance.uid, network.clone(), subnet.clone());
            let plumbing = match self.nic_plumbing.get(&kept_key) {
                Some(kept) => Some(kept),
                None => {
                    let key = (instance.project.clone(), network.clone(), subnet.clone());
                    if !subnets.contains_key(&key) {
                        let found = self
                            .store
                            .get_subnet_in_network(&instance.project, network, subnet)
                            .await?
                            .and_then(|(s, vni)| {
                                s.ipv4_cidr.parse().ok().map(|cidr| (vni as u32, cidr))
                            });
                        subnets.insert(key.clone(), found);
                    }
                    if let Some(found) = subnets[&key] {
                        self.nic_plumbing.keep(kept_key, found);
                    }
                    subnets[&key]
                }
            };
            let Some((vni, cidr)) = plumbing else {
                continue;
            };
            nics.push(VmNic {
                mac: nic.mac_address.clone().unwrap_or_default(),
                ipv4: ipv4.clone(),
                prefix_len: cidr.prefix_len(),
                gateway: stratus_core::ipam::gateway(&cidr).to_string(),
                ipv6: nic.ipv6_address.clone().unwrap_or_default(),
                vni,
                cidr: cidr.to_string(),
                external_ipv4: nic.external_ipv4_address.clone().unwrap_or_default(),
            });
        }
        Ok(nics)
    }

    pub async fn register_host(&self, host: &HostRegistration) -> Result<Uuid> {
        stratus_types::HostName::parse(&host.name).map_err(|e| Error::invalid("name", e))?;
        if let Some(underlay) = &host.underlay
            && underlay.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(Error::invalid(
                "underlay",
                format!("{underlay:?} is not an IPv4 address"),
            ));
        }
        if self.catalog.zone(&host.zone).is_none() {
            return Err(Error::invalid(
                "zone",
                format!(
                    "zone {} does not exist in region {}",
                    host.zone,
                    self.region()
                ),
            ));
        }
        let record = self
            .store
            .register_host(&HostRegistrationRecord {
                name: host.name.clone(),
                zone: host.zone.clone(),
                driver: host.driver.clone(),
                vcpus: host.vcpus,
                memory_mb: host.memory_mb,
                gpus: host.gpus.clone(),
                accelerator: host.accelerator.clone(),
                agent_version: host.agent_version.clone(),
                underlay: host.underlay.clone(),
                now: now(),
            })
            .await?;
        self.heartbeats
            .lock()
            .unwrap()
            .insert(record.id, Instant::now());
        self.changes
            .set_overlay_host(record.id, host.underlay.is_some());
        self.changes.bump();
        Ok(record.id)
    }

    /// The instances on `host`; waits up to `wait` for a change after `since`, unless the
    /// agent goes first (then it answers nothing). When `since` is of this process's epoch and
    /// its journal reaches back to it, only the instances written since (see
    /// [`stratus_store::Changes::written_on_host_since`]).
    pub async fn host_assignments(
        &self,
        host: Uuid,
        since: AssignmentCursor,
        wait: Duration,
        gone: &super::ClientGone,
    ) -> Result<AssignmentBatch> {
        let due = {
            let mut beats = self.heartbeats.lock().unwrap();
            let last = beats.get(&host).copied();
            let due = last.is_none_or(|t| t.elapsed() >= self.heartbeat_every());
            if due {
                beats.insert(host, Instant::now());
            }
            due
        };
        if due {
            // The heartbeat commits with the next group; the poll does not wait for it.
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_host(host, now()).await {
                    tracing::warn!(error = %e, %host, "recording a host's heartbeat failed");
                }
            });
        }
        // Another epoch's revision means nothing here: the whole list, at once. An agent that
        // names no epoch (one from before polls by difference) waits as it always did and
        // gets the whole list.
        let epoch = self.changes.epoch();
        let wait_since = match since.epoch {
            0 => since.revision,
            e if e == epoch => since.revision,
            _ => 0,
        };
        let revision = gone
            .unless_gone(self.changes.wait_host_past(host, wait_since, wait))
            .await
            .ok_or_else(|| Error::Unavailable("the agent stopped waiting".into()))?;
        let written = if since.epoch == epoch {
            self.changes.written_on_host_since(host, since.revision)
        } else {
            None
        };
        let (records, removed) = match &written {
            Some(uids) if uids.is_empty() => (Vec::new(), Vec::new()),
            Some(uids) => {
                let records = self.store.list_assignments_among(host, uids).await?;
                let here: HashSet<Uuid> = records.iter().map(|(r, _)| r.uid).collect();
                let removed = uids.iter().filter(|u| !here.contains(u)).copied().collect();
                (records, removed)
            }
            None => (self.store.list_assignments_on_host(host).await?, Vec::new()),
        };
        let mut subnets = HashMap::new();
        let mut assignments = Vec::with_capacity(records.len());
        for record in records {
            let nics = self.vm_nics(&record.0, &mut subnets).await?;
            assignments.push(assignment(record, nics));
        }
        // Only a host with an underlay has overlay peers; the query reads the region's NICs.
        let overlay_host = match self.changes.overlay_host(host) {
            Some(known) => known,
            None => {
                for h in self.store.list_hosts().await? {
                    self.changes.set_overlay_host(h.id, h.underlay.is_some());
                }
                self.changes.overlay_host(host).unwrap_or(true)
            }
        };
        let peers = if overlay_host {
            self.store.overlay_peers(host).await?
        } else {
            Vec::new()
        };
        let overlay = peers
            .into_iter()
            .map(|peer| OverlayPeer {
                vni: peer.vni as u32,
                mac: stratus_core::ipam::mac_for(peer.instance_uid, peer.nic as usize),
                underlay: peer.underlay,
            })
            .collect();
        Ok(AssignmentBatch {
            revision,
            epoch,
            complete: written.is_none(),
            assignments,
            removed,
            overlay,
        })
    }

    /// The metadata of instance `uid`, for the host it is placed on.
    pub async fn host_instance_metadata(
        &self,
        host: Uuid,
        uid: Uuid,
    ) -> Result<Vec<stratus_types::MetadataItem>> {
        match self.store.get_instance_by_uid(uid).await? {
            Some(r) if r.host_id == Some(host) => Ok(r.spec.metadata),
            _ => Err(Error::NotFound(format!(
                "instance {uid} is not on this host"
            ))),
        }
    }

    /// The instance of `uid` as kept in memory when `trusted` accepts that record, else as
    /// the database has it now.
    async fn instance_kept_if(
        &self,
        uid: Uuid,
        trusted: impl Fn(&InstanceRecord) -> bool,
    ) -> Result<Option<InstanceRecord>> {
        match self.store.get_cached_instance_by_uid(uid).await? {
            Some(kept) if trusted(&kept) => Ok(Some(kept)),
            _ => self.store.get_instance_by_uid(uid).await,
        }
    }

    /// Records a status an agent observed, unless the record changed since it was read.
    pub async fn host_report(&self, host: Uuid, report: &StatusReport) -> Result<Reported> {
        // The record in memory is the one reported on, as a rule; where it is not (it may lag
        // a write through another replica), the database's decides.
        let found = self
            .instance_kept_if(report.uid, |r| {
                r.host_id == Some(host) && r.generation == report.generation
            })
            .await?;
        let Some(mut record) = found else {
            return Ok(Reported::stale());
        };
        if record.host_id != Some(host) || record.generation != report.generation {
            return Ok(Reported::stale());
        }
        if report.intent_stopped && record.desired != DesiredState::Deleted {
            record.desired = DesiredState::Stopped;
        }
        record.set_status(report.status, report.message.clone(), now());
        match self.store.update_instance_status(&record).await? {
            // The change feed wakes whoever waits on the instance (watchers, other replicas);
            // the agent's own next poll must see this write already, so its host's journal
            // has it before the answer (the feed noting it again later is harmless).
            Some(stored) => {
                self.changes.bump_instance(Some((host, stored.uid)), false);
                tracing::info!(
                    id = %stored.id, project = %stored.project,
                    status = stored.status.as_str(),
                    status_message = stored.status_message.as_deref().unwrap_or(""),
                    "instance status"
                );
                Ok(Reported {
                    outcome: ReportOutcome::Accepted,
                    now: Some(ReportedRecord {
                        generation: stored.generation,
                        desired: stored.desired,
                        status: stored.status,
                    }),
                })
            }
            None => Ok(Reported::stale()),
        }
    }

    /// The host has destroyed the VM of a deleted instance: the instance is gone.
    pub async fn host_destroyed(&self, host: Uuid, uid: Uuid) -> Result<()> {
        let Some(record) = self.store.get_instance_by_uid(uid).await? else {
            return Ok(());
        };
        if record.host_id == Some(host) && self.store.finalize_instance_deletion(uid).await? {
            self.changes.bump_instance(Some((host, uid)), true);
            tracing::info!(id = %record.id, project = %record.project, "instance deleted");
        }
        Ok(())
    }

    /// Appends serial console output of an instance on `host`.
    pub async fn host_serial(&self, host: Uuid, uid: Uuid, at: u64, bytes: &[u8]) -> Result<u64> {
        // An instance never changes host, so the record in memory tells where it is; the
        // append itself finds nothing to append to once the instance is gone.
        match self
            .instance_kept_if(uid, |r| r.host_id == Some(host))
            .await?
        {
            Some(r) if r.host_id == Some(host) => {
                self.store
                    .append_console(uid, at, bytes, self.config.console_keep_bytes)
                    .await
            }
            _ => Err(Error::NotFound(format!(
                "instance {uid} is not on this host"
            ))),
        }
    }
}
