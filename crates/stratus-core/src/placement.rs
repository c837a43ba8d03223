//! Choosing a host for a new instance.
//!
//! Placement runs inside the create transaction, over the live hosts of the zone and what the
//! instances already placed on them reserve. An instance keeps its reservation while it
//! exists, stopped or not (as Nova does), so a stopped instance can always start again. Among
//! the hosts that fit, the one with the most free vCPUs wins, spreading load. When nothing fits
//! the error says what was asked and what the zone has free, so the caller can pick a smaller
//! type or another zone.
//!
//! Bare metal is the same question with two more rules: an instance of a bare-metal type goes
//! only to a bare-metal server's host (and a VM never does), and such a host takes one
//! instance, whatever it has left over — a server is not shared.

use crate::Error;
use uuid::Uuid;

/// What a new instance needs from its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub vcpus: u32,
    pub memory_mb: u64,
    /// GPU type id and count, when the instance has GPUs.
    pub gpu: Option<(String, u32)>,
    /// Whether it needs a whole bare-metal server.
    pub baremetal: bool,
}

/// A live host with its capacity and what is already reserved on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostUsage {
    pub host_id: Uuid,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: Vec<(String, u32)>,
    pub used_vcpus: u32,
    pub used_memory_mb: u64,
    pub used_gpus: Vec<(String, u32)>,
    /// Instances placed on it.
    pub instances: u32,
    /// Whether it is a bare-metal server (it takes one instance of a bare-metal type).
    pub baremetal: bool,
}

impl HostUsage {
    fn free_vcpus(&self) -> u32 {
        self.vcpus.saturating_sub(self.used_vcpus)
    }

    fn free_memory_mb(&self) -> u64 {
        self.memory_mb.saturating_sub(self.used_memory_mb)
    }

    fn free_gpus(&self, gpu_type: &str) -> u32 {
        let total: u32 = self
            .gpus
            .iter()
            .filter(|(t, _)| t == gpu_type)
            .map(|(_, n)| n)
            .sum();
        let used: u32 = self
            .used_gpus
            .iter()
            .filter(|(t, _)| t == gpu_type)
            .map(|(_, n)| n)
            .sum();
        total.saturating_sub(used)
    }

    fn fits(&self, demand: &Demand) -> bool {
        self.baremetal == demand.baremetal
            && (!self.baremetal || self.instances == 0)
            && self.free_vcpus() >= demand.vcpus
            && self.free_memory_mb() >= demand.memory_mb
            && demand
                .gpu
                .as_ref()
                .is_none_or(|(t, n)| self.free_gpus(t) >= *n)
    }
}

/// Picks the host for `demand` in `zone`, or explains why none fits.
pub fn choose_host(zone: &str, demand: &Demand, hosts: &[HostUsage]) -> Result<Uuid, Error> {
    if let Some(best) = hosts
        .iter()
        .filter(|h| h.fits(demand))
        .max_by_key(|h| (h.free_vcpus(), h.free_memory_mb()))
    {
        return Ok(best.host_id);
    }
    let mut asked = format!(
        "{} vCPUs and {} MB of memory",
        demand.vcpus, demand.memory_mb
    );
    if let Some((t, n)) = &demand.gpu {
        asked.push_str(&format!(" and {n} GPUs of type {t}"));
    }
    let hosts: Vec<&HostUsage> = hosts
        .iter()
        .filter(|h| h.baremetal == demand.baremetal)
        .collect();
    if demand.baremetal {
        let free = hosts.iter().filter(|h| h.instances == 0).count();
        let why = match (hosts.len(), free) {
            (0, _) => "the zone has no ready bare-metal server".to_owned(),
            (n, 0) => format!("all {n} of its ready bare-metal servers are in use"),
            (_, free) => format!("none of its {free} free bare-metal servers is that large"),
        };
        return Err(Error::ResourceExhausted(format!(
            "no bare-metal capacity in zone {zone} for {asked}: {why}"
        )));
    }
    if hosts.is_empty() {
        return Err(Error::ResourceExhausted(format!(
            "no schedulable host of zone {zone} is up to take {asked}"
        )));
    }
    let max_vcpus = hosts.iter().map(|h| h.free_vcpus()).max().unwrap_or(0);
    let max_memory = hosts.iter().map(|h| h.free_memory_mb()).max().unwrap_or(0);
    let mut free =
        format!("the most free on one host is {max_vcpus} vCPUs and {max_memory} MB of memory");
    if let Some((t, _)) = &demand.gpu {
        let max_gpus = hosts.iter().map(|h| h.free_gpus(t)).max().unwrap_or(0);
        free.push_str(&format!(" and {max_gpus} GPUs of type {t}"));
    }
    Err(Error::ResourceExhausted(format!(
        "zone {zone} has no room for {asked}: {free} ({} schedulable hosts up)",
        hosts.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vcpus: u32, used: u32, gpus: u32) -> HostUsage {
        HostUsage {
            host_id: Uuid::new_v4(),
            vcpus,
            memory_mb: 65536,
            gpus: vec![("h100".into(), gpus)],
            used_vcpus: used,
            used_memory_mb: 0,
            used_gpus: vec![],
            instances: 0,
            baremetal: false,
        }
    }

    #[test]
    fn spreads_to_the_host_with_most_free_vcpus() {
        let hosts = [host(16, 12, 0), host(16, 2, 0), host(16, 8, 0)];
        let demand = Demand {
            vcpus: 2,
            memory_mb: 1024,
            gpu: None,
            baremetal: false,
        };
        assert_eq!(choose_host("z", &demand, &hosts).unwrap(), hosts[1].host_id);
    }

    #[test]
    fn gpus_must_be_free_on_the_same_host() {
        let hosts = [host(64, 0, 0), host(8, 0, 2)];
        let demand = Demand {
            vcpus: 4,
            memory_mb: 1024,
            gpu: Some(("h100".into(), 2)),
            baremetal: false,
        };
        assert_eq!(choose_host("z", &demand, &hosts).unwrap(), hosts[1].host_id);
    }

    #[test]
    fn exhaustion_says_what_was_asked_and_what_is_free() {
        let hosts = [host(16, 14, 0)];
        let demand = Demand {
            vcpus: 4,
            memory_mb: 1024,
            gpu: None,
            baremetal: false,
        };
        let Error::ResourceExhausted(msg) = choose_host("local-1a", &demand, &hosts).unwrap_err()
        else {
            panic!("want ResourceExhausted")
        };
        assert!(msg.contains("4 vCPUs") && msg.contains("2 vCPUs"), "{msg}");
        assert!(msg.contains("local-1a"), "{msg}");
    }

    #[test]
    fn a_bare_metal_server_takes_one_bare_metal_instance_and_no_vm() {
        let mut server = host(8, 0, 0);
        server.baremetal = true;
        let vm_host = host(64, 0, 0);
        let bm = Demand {
            vcpus: 1,
            memory_mb: 512,
            gpu: None,
            baremetal: true,
        };
        let vm = Demand {
            baremetal: false,
            ..bm.clone()
        };
        let hosts = [vm_host.clone(), server.clone()];
        assert_eq!(choose_host("z", &bm, &hosts).unwrap(), server.host_id);
        assert_eq!(choose_host("z", &vm, &hosts).unwrap(), vm_host.host_id);
        server.instances = 1;
        server.used_vcpus = 1;
        let Error::ResourceExhausted(msg) = choose_host("z", &bm, &[vm_host, server]).unwrap_err()
        else {
            panic!("want ResourceExhausted")
        };
        assert!(
            msg.contains("bare-metal capacity") && msg.contains("in use"),
            "{msg}"
        );
    }
}
