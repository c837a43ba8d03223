//! Networks, subnets and addresses of a project (see [`stratus_core::ipam`] for the address
//! rules and `stratus_store`'s addressing for how they are handed out).

use super::tenancy::Versioned;
use super::{App, Caller, Paging, Permission, Precondition, check_text, etag, now, resource_id};
use stratus_core::catalog::{NETWORK_REF, SUBNET_REF, parse_reference};
use stratus_core::retry::optimistic;
use stratus_core::{Error, Result, ids, ipam};
use stratus_store::{AddressRecord, EXTERNAL_SPACE, NetworkRecord, ProjectRecord, SubnetRecord};
use stratus_types::{
    Address, AddressAllocateRequest, AddressList, AddressType, IpVersion, Network,
    NetworkCreateRequest, NetworkList, NetworkUpdateRequest, ResourceId, Subnet, SubnetList,
};
use uuid::Uuid;

/// The 404 for `kind` `id` of `project`.
fn missing(kind: &str, id: &dyn std::fmt::Display, project: &str) -> Error {
    Error::NotFound(format!("{kind} {id} not found in project {project}"))
}

impl App {
    fn compute_link(&self, project: &str, kind: &str, id: &str) -> String {
        format!(
            "/v1/regions/{}/projects/{project}/compute/{kind}/{id}",
            self.region()
        )
    }

    fn subnet_view(&self, s: &SubnetRecord) -> Subnet {
        let cidr: ipnet::Ipv4Net = s.ipv4_cidr.parse().expect("stored CIDRs parse");
        Subnet {
            self_link: self.compute_link(&s.project, "subnets", &s.id),
            uid: s.uid,
            id: ResourceId::parse(&s.id).expect("stored ids are valid"),
            display_name: s.display_name.clone(),
            description: s.description.clone(),
            network: self.compute_link(&s.project, "networks", &s.network),
            ipv4_cidr: s.ipv4_cidr.clone(),
            ipv6_cidr: s.ipv6_cidr.clone(),
            gateway_address: ipam::gateway(&cidr).to_string(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }

    async fn network_view(&self, n: &NetworkRecord) -> Result<Versioned<Network>> {
        let subnets = self.store.subnets_of_network(n.uid).await?;
        Ok(Versioned {
            value: Network {
                self_link: self.compute_link(&n.project, "networks", &n.id),
                uid: n.uid,
                id: ResourceId::parse(&n.id).expect("stored ids are valid"),
                display_name: n.display_name.clone(),
                description: n.description.clone(),
                cidr: n.cidr.clone(),
                subnets: subnets.iter().map(|s| self.subnet_view(s)).collect(),
                created_at: n.created_at,
                updated_at: n.updated_at,
            },
            etag: etag(n.uid, n.generation),
        })
    }

    async fn address_view(&self, a: &AddressRecord) -> Result<Address> {
        let user = match a.instance_uid {
            Some(uid) => self
                .store
                .get_instance_by_uid(uid)
                .await?
                .map(|i| self.compute_link(&i.project, "instances", &i.id)),
            None => None,
        };
        let id = a.id.as_deref().unwrap_or_default();
        Ok(Address {
            self_link: self.compute_link(&a.project, "addresses", id),
            uid: a.uid,
            id: ResourceId::parse(id).expect("listed addresses have valid ids"),
            display_name: a.display_name.clone(),
            description: a.description.clone(),
            ip_address: a.ip.clone(),
            ip_version: IpVersion::Ipv4,
            address_type: a.address_type,
            network: a
                .network
                .as_deref()
                .map(|n| self.compute_link(&a.project, "networks", n)),
            subnetwork: a
                .subnet
                .as_deref()
                .map(|s| self.compute_link(&a.project, "subnets", s)),
            status: if user.is_some() { "IN_USE" } else { "RESERVED" }.into(),
            user,
            created_at: a.created_at,
        })
    }

    async fn network_record(&self, project: &ProjectRecord, id: &str) -> Result<NetworkRecord> {
        let id = resource_id("id", id)?;
        self.store
            .get_network(&project.id, id.as_str())
            .await?
            .ok_or_else(|| missing("network", &id, &project.id))
    }

    pub async fn create_network(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        body: NetworkCreateRequest,
    ) -> Result<Versioned<Network>> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::NetworksCreate,
            )
            .await?;
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        let cidr = ipam::parse_network_cidr("cidr", &body.cidr)?;
        let id = body.id.unwrap_or_else(|| ids::generate("network"));
        let (network, subnet) = stratus_store::new_network(
            &project.id,
            id.as_str(),
            &cidr,
            body.display_name.as_deref().unwrap_or_default(),
            body.description.as_deref().unwrap_or_default(),
        );
        let stored = self.store.create_network(&network, &subnet).await?;
        tracing::info!(project = %project.id, network = %stored.id, cidr = %stored.cidr, vni = stored.vni, "network created");
        self.network_view(&stored).await
    }

    pub async fn get_network(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
    ) -> Result<Versioned<Network>> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::NetworksGet)
            .await?;
        let network = self.network_record(&project, id).await?;
        self.network_view(&network).await
    }

    pub async fn list_networks(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        paging: &Paging,
    ) -> Result<NetworkList> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::NetworksList)
            .await?;
        let key = format!("networks:{}", project.id);
        let request = self.pages.page_request(paging, &key)?;
        let page = self.store.list_networks(&project.id, &request).await?;
        let mut networks = Vec::with_capacity(page.items.len());
        for network in &page.items {
            networks.push(self.network_view(network).await?.value);
        }
        Ok(NetworkList {
            next_page_token: self.next_token(&page, &request, &key, |n| &n.id),
            networks,
        })
    }

    pub async fn update_network(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
        precondition: &Precondition,
        body: NetworkUpdateRequest,
    ) -> Result<Versioned<Network>> {
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        let body = &body;
        let stored = optimistic(&format!("network {id}"), move || async move {
            let project = self
                .project_for(
                    &caller.principal,
                    region,
                    project,
                    Permission::NetworksUpdate,
                )
                .await?;
            let mut network = self.network_record(&project, id).await?;
            precondition.check(
                &etag(network.uid, network.generation),
                &format!("network {id}"),
            )?;
            if let Some(v) = &body.display_name {
                network.display_name = v.clone();
            }
            if let Some(v) = &body.description {
                network.description = v.clone();
            }
            network.updated_at = now();
            self.store.update_network(&network).await
        })
        .await?;
        self.network_view(&stored).await
    }

    pub async fn delete_network(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
        precondition: &Precondition,
    ) -> Result<()> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::NetworksDelete,
            )
            .await?;
        let network = self.network_record(&project, id).await?;
        precondition.check(
            &etag(network.uid, network.generation),
            &format!("network {id}"),
        )?;
        if !self.store.delete_network(&project.id, &network.id).await? {
            return Err(missing("network", &id, &project.id));
        }
        tracing::info!(project = %project.id, network = %network.id, "network deleted");
        Ok(())
    }

    pub async fn get_subnet(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
    ) -> Result<Subnet> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::SubnetsGet)
            .await?;
        let id = resource_id("id", id)?;
        let subnet = self
            .store
            .get_subnet(&project.id, id.as_str())
            .await?
            .ok_or_else(|| missing("subnet", &id, &project.id))?;
        Ok(self.subnet_view(&subnet))
    }

    pub async fn list_subnets(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        paging: &Paging,
    ) -> Result<SubnetList> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::SubnetsList)
            .await?;
        let key = format!("subnets:{}", project.id);
        let request = self.pages.page_request(paging, &key)?;
        let page = self.store.list_subnets(&project.id, &request).await?;
        Ok(SubnetList {
            next_page_token: self.next_token(&page, &request, &key, |s| &s.id),
            subnets: page.items.iter().map(|s| self.subnet_view(s)).collect(),
        })
    }

    /// Reserves an address: INTERNAL in a subnet of one of the project's networks (the one it
    /// asks for, or the next free one), or EXTERNAL from the region's pool.
    pub async fn allocate_address(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        body: AddressAllocateRequest,
    ) -> Result<Address> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::AddressesCreate,
            )
            .await?;
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        if body.ip_version == Some(IpVersion::Ipv6) {
            return Err(Error::invalid(
                "ipVersion",
                "IPv6 addresses follow their NIC's IPv4 address; reserve an IPV4 address",
            ));
        }
        let address_type = body.address_type.unwrap_or_default();
        let id = body.id.unwrap_or_else(|| ids::generate("address"));
        let mut record = AddressRecord {
            uid: Uuid::new_v4(),
            project: project.id.clone(),
            id: Some(id.to_string()),
            space: EXTERNAL_SPACE.into(),
            ip: String::new(),
            address_type,
            network: None,
            subnet: None,
            instance_uid: None,
            nic: None,
            display_name: body.display_name.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            created_at: now(),
        };
        let range = match address_type {
            AddressType::External => {
                for (field, given) in [
                    ("ipAddress", body.ip_address.is_some()),
                    ("network", body.network.is_some()),
                    ("subnetwork", body.subnetwork.is_some()),
                ] {
                    if given {
                        return Err(Error::invalid(
                            field,
                            format!(
                                "{field} is for INTERNAL addresses; EXTERNAL ones come from the region's pool"
                            ),
                        ));
                    }
                }
                self.config.external_pool.ok_or_else(|| {
                    Error::ResourceExhausted(
                        "this region has no external addresses (its operators set [networks] external-cidr)"
                            .into(),
                    )
                })?
            }
            AddressType::Internal => {
                let subnet = self
                    .address_subnet(&project, &body.network, &body.subnetwork)
                    .await?;
                let range: ipnet::Ipv4Net = subnet.ipv4_cidr.parse().expect("stored CIDRs parse");
                if let Some(text) = &body.ip_address {
                    let ip: std::net::Ipv4Addr = text.parse().map_err(|_| {
                        Error::invalid("ipAddress", format!("{text:?} is not an IPv4 address"))
                    })?;
                    ipam::check_guest_address(&range, ip)
                        .map_err(|e| Error::invalid("ipAddress", e))?;
                    record.ip = ip.to_string();
                }
                record.space = subnet.uid.to_string();
                record.network = Some(subnet.network.clone());
                record.subnet = Some(subnet.id.clone());
                range
            }
        };
        let stored = self.store.allocate_address(&record, &range).await?;
        tracing::info!(project = %project.id, address = %id, ip = %stored.ip, kind = address_type.as_str(), "address reserved");
        self.address_view(&stored).await
    }

    /// The subnet an INTERNAL address is reserved in: the one named, or the first of the
    /// network named (which must agree when both are).
    async fn address_subnet(
        &self,
        project: &ProjectRecord,
        network: &Option<String>,
        subnetwork: &Option<String>,
    ) -> Result<SubnetRecord> {
        let id_in = |field: &str, uri: &str, pattern: &str| -> Result<String> {
            let parts = parse_reference(field, uri, pattern)?;
            if parts[0] != self.region() || parts[1] != project.id {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{field} must be of region {} and project {}",
                        self.region(),
                        project.id
                    ),
                ));
            }
            Ok(resource_id(field, parts[2])?.to_string())
        };
        let network_id = network
            .as_deref()
            .map(|uri| id_in("network", uri, NETWORK_REF))
            .transpose()?;
        if let Some(uri) = subnetwork {
            let id = id_in("subnetwork", uri, SUBNET_REF)?;
            let subnet = self
                .store
                .get_subnet(&project.id, &id)
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        "subnetwork",
                        format!("subnet {id} does not exist in project {}", project.id),
                    )
                })?;
            if let Some(network) = network_id
                && network != subnet.network
            {
                return Err(Error::invalid(
                    "subnetwork",
                    format!(
                        "subnet {id} belongs to network {}, not {network}",
                        subnet.network
                    ),
                ));
            }
            return Ok(subnet);
        }
        let Some(network_id) = network_id else {
            return Err(Error::invalid(
                "network",
                "an INTERNAL address needs its network or subnetwork",
            ));
        };
        let network = self
            .store
            .get_network(&project.id, &network_id)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "network",
                    format!(
                        "network {network_id} does not exist in project {}",
                        project.id
                    ),
                )
            })?;
        self.store
            .subnets_of_network(network.uid)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal(format!("network {network_id} has no subnet")))
    }

    pub async fn get_address(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
    ) -> Result<Address> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::AddressesGet)
            .await?;
        let id = resource_id("id", id)?;
        let address = self
            .store
            .get_address(&project.id, id.as_str())
            .await?
            .ok_or_else(|| missing("address", &id, &project.id))?;
        self.address_view(&address).await
    }

    pub async fn list_addresses(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        paging: &Paging,
    ) -> Result<AddressList> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::AddressesList,
            )
            .await?;
        let key = format!("addresses:{}", project.id);
        let request = self.pages.page_request(paging, &key)?;
        let page = self.store.list_addresses(&project.id, &request).await?;
        let mut addresses = Vec::with_capacity(page.items.len());
        for address in &page.items {
            addresses.push(self.address_view(address).await?);
        }
        Ok(AddressList {
            next_page_token: self.next_token(&page, &request, &key, |a| {
                a.id.as_deref().unwrap_or_default()
            }),
            addresses,
        })
    }

    pub async fn release_address(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
    ) -> Result<()> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::AddressesDelete,
            )
            .await?;
        let id = resource_id("id", id)?;
        if !self.store.release_address(&project.id, id.as_str()).await? {
            return Err(missing("address", &id, &project.id));
        }
        tracing::info!(project = %project.id, address = %id, "address released");
        Ok(())
    }
}
