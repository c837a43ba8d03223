//! `stratus networks …` and `stratus addresses …`: a project's networks and reserved addresses.

use super::output::{Tabular, emit, fields, when};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::{
    Address, AddressAllocateRequest, AddressType, Network, NetworkCreateRequest, ResourceId, Subnet,
};

/// `stratus networks …`.
#[derive(Subcommand)]
pub enum NetworksCommand {
    /// List the project's networks with their subnets.
    List,
    /// Show one network.
    Get { id: String },
    /// Create a network with a private CIDR (e.g. 10.1.0.0/16); its subnet is made with it.
    Create {
        id: String,
        #[arg(long)]
        cidr: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a network no instance or address uses.
    Delete { id: String },
    /// List the project's subnets.
    Subnets,
}

/// `stratus addresses …`.
#[derive(Subcommand)]
pub enum AddressesCommand {
    /// List the addresses the project reserved.
    List,
    /// Show one address.
    Get { id: String },
    /// Reserve an address: in a network (`--network`, optionally `--ip`), or an external one.
    Create {
        id: Option<String>,
        /// The network an INTERNAL address is reserved in.
        #[arg(long)]
        network: Option<String>,
        /// A particular address of that network.
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Release a reserved address.
    Delete { id: String },
}

fn id_of(text: &str, what: &str) -> Result<ResourceId, Failure> {
    ResourceId::parse(text).map_err(|e| Failure::Usage(format!("invalid {what}: {e}")))
}

impl NetworksCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let networks = session.client.networks(&session.region, &session.project);
        match self {
            NetworksCommand::List => emit(session.output, &networks.list().await?),
            NetworksCommand::Get { id } => emit(session.output, &networks.get_network(&id).await?),
            NetworksCommand::Create {
                id,
                cidr,
                display_name,
                description,
            } => {
                let request = NetworkCreateRequest {
                    id: Some(id_of(&id, "network id")?),
                    display_name,
                    description,
                    cidr,
                };
                emit(session.output, &networks.create(&request).await?)
            }
            NetworksCommand::Delete { id } => {
                networks.delete(&id).await?;
                eprintln!("network {id} deleted");
                Ok(())
            }
            NetworksCommand::Subnets => emit(session.output, &networks.subnets().await?),
        }
    }
}

impl AddressesCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let networks = session.client.networks(&session.region, &session.project);
        match self {
            AddressesCommand::List => emit(session.output, &networks.addresses().await?),
            AddressesCommand::Get { id } => emit(session.output, &networks.get_address(&id).await?),
            AddressesCommand::Create {
                id,
                network,
                ip,
                display_name,
            } => {
                let network = network.map(|n| {
                    format!(
                        "/v1/regions/{}/projects/{}/compute/networks/{n}",
                        session.region, session.project
                    )
                });
                if ip.is_some() && network.is_none() {
                    return Err(Failure::Usage(
                        "--ip is an address of a network: give --network too".into(),
                    ));
                }
                let request = AddressAllocateRequest {
                    id: id.as_deref().map(|i| id_of(i, "address id")).transpose()?,
                    display_name,
                    address_type: Some(if network.is_some() {
                        AddressType::Internal
                    } else {
                        AddressType::External
                    }),
                    network,
                    ip_address: ip,
                    ..AddressAllocateRequest::default()
                };
                emit(session.output, &networks.allocate_address(&request).await?)
            }
            AddressesCommand::Delete { id } => {
                networks.release_address(&id).await?;
                eprintln!("address {id} released");
                Ok(())
            }
        }
    }
}

fn last_segment(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

impl Tabular for Vec<Network> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|n| {
                vec![
                    n.id.to_string(),
                    n.cidr.clone(),
                    n.subnets
                        .iter()
                        .map(|s| s.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    n.display_name.clone(),
                    when(&n.created_at),
                ]
            })
            .collect();
        (vec!["ID", "CIDR", "SUBNETS", "NAME", "CREATED"], rows)
    }
}

impl Tabular for Network {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let subnet = self.subnets.first();
        fields(vec![
            ("id", self.id.to_string()),
            ("cidr", self.cidr.clone()),
            (
                "subnets",
                self.subnets
                    .iter()
                    .map(|s| format!("{} ({}, {})", s.id, s.ipv4_cidr, s.ipv6_cidr))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "gateway",
                subnet
                    .map(|s| s.gateway_address.clone())
                    .unwrap_or_default(),
            ),
            ("display name", self.display_name.clone()),
            ("description", self.description.clone()),
            ("created", when(&self.created_at)),
        ])
    }
}

impl Tabular for Vec<Subnet> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    last_segment(&s.network).to_owned(),
                    s.ipv4_cidr.clone(),
                    s.ipv6_cidr.clone(),
                    s.gateway_address.clone(),
                ]
            })
            .collect();
        (vec!["ID", "NETWORK", "IPV4", "IPV6", "GATEWAY"], rows)
    }
}

impl Tabular for Vec<Address> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|a| {
                vec![
                    a.id.to_string(),
                    a.ip_address.clone(),
                    a.address_type.as_str().to_owned(),
                    a.network
                        .as_deref()
                        .map(last_segment)
                        .unwrap_or("")
                        .to_owned(),
                    a.status.clone(),
                    a.user.as_deref().map(last_segment).unwrap_or("").to_owned(),
                ]
            })
            .collect();
        (
            vec!["ID", "ADDRESS", "TYPE", "NETWORK", "STATUS", "USER"],
            rows,
        )
    }
}

impl Tabular for Address {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.to_string()),
            ("address", self.ip_address.clone()),
            ("type", self.address_type.as_str().to_owned()),
            (
                "network",
                self.network
                    .as_deref()
                    .map(last_segment)
                    .unwrap_or("")
                    .to_owned(),
            ),
            ("status", self.status.clone()),
            (
                "user",
                self.user
                    .as_deref()
                    .map(last_segment)
                    .unwrap_or("")
                    .to_owned(),
            ),
            ("created", when(&self.created_at)),
        ])
    }
}
