//! `stratus hosts …`: the hosts of a zone, for the region's operators.

use super::output::{Tabular, emit, fields, when};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::{Host, HostAction, HostResources};

/// `stratus hosts …`.
#[derive(Subcommand)]
pub enum HostsCommand {
    /// List the hosts of the zone: health, scheduling, capacity and what is allocated.
    List,
    /// Show one host with the instances on it.
    Get { name: String },
    /// Keep new instances off a host; those on it stay.
    Cordon { name: String },
    /// Let placement use a host again.
    Uncordon { name: String },
    /// Cordon a host and list the instances still on it, to move off before servicing it.
    Drain { name: String },
}

impl HostsCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let catalog = session.client.catalog(&session.region);
        let zone = &session.zone;
        let (name, action) = match self {
            HostsCommand::List => {
                return emit(session.output, &catalog.hosts(zone).await?.hosts);
            }
            HostsCommand::Get { name } => {
                return emit(session.output, &catalog.host(zone, &name).await?);
            }
            HostsCommand::Cordon { name } => (name, HostAction::Cordon),
            HostsCommand::Uncordon { name } => (name, HostAction::Uncordon),
            HostsCommand::Drain { name } => (name, HostAction::Drain),
        };
        emit(
            session.output,
            &catalog.host_action(zone, &name, action).await?,
        )
    }
}

fn scheduling(host: &Host) -> String {
    format!("{:?}", host.scheduling).to_uppercase()
}

fn share(allocated: u64, capacity: u64) -> String {
    format!("{allocated}/{capacity}")
}

fn memory(resources: &HostResources) -> u64 {
    resources.memory_mb.div_ceil(1024)
}

impl Tabular for Vec<Host> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|h| {
                vec![
                    h.id.clone(),
                    format!("{:?}", h.status).to_uppercase(),
                    scheduling(h),
                    h.driver.clone(),
                    share(h.allocated.vcpus, h.capacity.vcpus),
                    share(memory(&h.allocated), h.capacity.memory_mb / 1024),
                    h.instance_count.to_string(),
                    when(&h.last_heartbeat_at),
                ]
            })
            .collect();
        (
            vec![
                "NAME",
                "STATUS",
                "SCHEDULING",
                "DRIVER",
                "VCPUS",
                "MEMORY GIB",
                "INSTANCES",
                "HEARTBEAT",
            ],
            rows,
        )
    }
}

impl Tabular for Host {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let instances = self.instances.as_ref().map_or_else(String::new, |list| {
            list.iter()
                .map(|i| format!("{}/{} ({})", i.project, i.id, i.status.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        });
        fields(vec![
            ("name", self.id.clone()),
            ("zone", self.zone.to_string()),
            ("status", format!("{:?}", self.status).to_uppercase()),
            ("scheduling", scheduling(self)),
            (
                "driver",
                match &self.accelerator {
                    Some(accelerator) => format!("{} ({accelerator})", self.driver),
                    None => self.driver.clone(),
                },
            ),
            ("agent", self.agent_version.clone().unwrap_or_default()),
            ("vcpus", share(self.allocated.vcpus, self.capacity.vcpus)),
            (
                "memory GiB",
                share(memory(&self.allocated), self.capacity.memory_mb / 1024),
            ),
            ("instances", instances),
            ("heartbeat", when(&self.last_heartbeat_at)),
        ])
    }
}
