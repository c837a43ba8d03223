//! Handing out addresses inside a transaction (see [`stratus_core::ipam`] for the rules).
//!
//! Every allocation first locks the row of the space it allocates in (the subnet's row, or the
//! external pool's setting) and inserts its choice: allocations in one space queue on that
//! lock, so each sees every address handed out before it, and the uniqueness constraint on
//! `(space, ip)` stands behind that should anything slip. An instance's NICs are resolved and
//! given their addresses in the transaction that creates the instance, so an instance never
//! exists without its addresses, nor an address without the reason it was given.
//!
//! Reading every address a subnet has handed out to find a free one costs a read per address
//! per create: a subnet of 50,000 guests would read 50,000 rows for each new one. So a subnet
//! hands out its addresses in turn instead (next fit): each allocation looks up the address
//! after the one this process handed out last, one indexed lookup per try, and wraps around at
//! the subnet's end, so a released address is reused last. Only when a few tries in a row find
//! addresses taken (a fragmented subnet, or a process that has just started) does it read the
//! subnet's addresses and take the lowest free one, and the tries go on after that. The external pool, small and shared, is
//! always read whole.

use crate::engine::{DbResult, Engine, Tx, args};
use crate::records::*;
use crate::rows::insert;
use crate::sql::records;
use chrono::Utc;
use ipnet::Ipv4Net;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use stratus_core::Error;
use stratus_core::ipam;
use stratus_types::{AddressType, Nic};
use uuid::Uuid;

/// The setting whose row external allocations lock, and the one holding the next VNI.
pub(crate) const EXTERNAL_POOL_LOCK: &str = "external-pool";
pub(crate) const NEXT_VNI: &str = "next-vni";

/// Makes the setting `key` exist (with `initial`), so that its row can be locked; a region
/// that never used it has none.
async fn ensure_setting(tx: &mut Box<dyn Tx>, key: &str, initial: &str) -> DbResult<()> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        args![key, initial],
    )
    .await?;
    Ok(())
}

/// Locks the row of `space` for the rest of `tx` (where the database locks rows).
async fn lock_space(tx: &mut Box<dyn Tx>, engine: &dyn Engine, space: &str) -> DbResult<()> {
    if !engine.locks_rows() {
        return Ok(());
    }
    if space == EXTERNAL_SPACE {
        ensure_setting(tx, EXTERNAL_POOL_LOCK, "").await?;
    }
    let sql = if space == EXTERNAL_SPACE {
        format!(
            "SELECT key FROM settings WHERE key = ?{}",
            engine.for_update()
        )
    } else {
        format!(
            "SELECT uid FROM subnets WHERE uid = ?{}",
            engine.for_update()
        )
    };
    let key: crate::engine::Arg = if space == EXTERNAL_SPACE {
        EXTERNAL_POOL_LOCK.into()
    } else {
        Uuid::parse_str(space)
            .map_err(|e| Error::internal(format!("bad space {space}: {e}")))?
            .into()
    };
    tx.query(&sql, vec![key]).await?;
    Ok(())
}

/// The addresses `space` has handed out, with their rows.
async fn handed_out(tx: &mut Box<dyn Tx>, space: &str) -> DbResult<Vec<AddressRecord>> {
    Ok(records(
        &tx.query("SELECT * FROM addresses WHERE space = ?", args![space])
            .await?,
    )?)
}

/// Where the next try for a free address of each subnet starts, by space (next fit).
static NEXT_TRY: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
    std::sync::LazyLock::new(Default::default);

/// Tries before falling back to reading the whole subnet.
const TRIES: usize = 16;

/// `address` stored at a free guest address of `subnet`, found by trying the addresses after
/// the last one handed out, one indexed insert each (a taken one inserts nothing); `None`
/// after [`TRIES`] taken ones.
async fn next_in_turn(
    tx: &mut Box<dyn Tx>,
    mut address: AddressRecord,
    subnet: &Ipv4Net,
) -> DbResult<Option<AddressRecord>> {
    let guests = ipam::guest_range(subnet);
    if guests.is_empty() {
        return Ok(None);
    }
    let space = address.space.clone();
    let mut candidate = NEXT_TRY
        .lock()
        .unwrap()
        .get(&space)
        .copied()
        .filter(|n| guests.contains(n))
        .unwrap_or(guests.start);
    for _ in 0..TRIES {
        let ip = Ipv4Addr::from(candidate);
        candidate = following(&guests, candidate);
        address.ip = ip.to_string();
        let (sql, values) = insert(&address);
        let sql = format!("{sql} ON CONFLICT (space, ip) DO NOTHING");
        if execute_insert(tx, &sql, values, &address).await? == 1 {
            try_next_after(&space, ip, subnet);
            return Ok(Some(address));
        }
    }
    Ok(None)
}

/// The guest address after `n`, wrapping around at the end of `guests`.
fn following(guests: &std::ops::Range<u32>, n: u32) -> u32 {
    if n + 1 >= guests.end {
        guests.start
    } else {
        n + 1
    }
}

/// Notes that the next try in `space` starts after `ip`.
fn try_next_after(space: &str, ip: Ipv4Addr, subnet: &Ipv4Net) {
    let next = following(&ipam::guest_range(subnet), u32::from(ip));
    NEXT_TRY.lock().unwrap().insert(space.to_owned(), next);
}

/// Allocates `address` (its `ip` empty for the next free one) in `range`, the subnet's CIDR or
/// the external pool; returns it as stored.
pub(crate) async fn allocate(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    mut address: AddressRecord,
    range: &Ipv4Net,
) -> DbResult<AddressRecord> {
    lock_space(tx, engine, &address.space).await?;
    if address.ip.is_empty()
        && address.address_type == AddressType::Internal
        && let Some(stored) = next_in_turn(tx, address.clone(), range).await?
    {
        return Ok(stored);
    }
    let held = handed_out(tx, &address.space).await?;
    let taken: HashSet<Ipv4Addr> = held.iter().filter_map(|a| a.ip.parse().ok()).collect();
    if address.ip.is_empty() {
        let next = if address.address_type == AddressType::External {
            ipam::next_free_external(range, &taken)
        } else {
            ipam::next_free(range, &taken)
        };
        let Some(ip) = next else {
            return Err(full(range, &address).into());
        };
        if address.address_type == AddressType::Internal {
            try_next_after(&address.space, ip, range);
        }
        address.ip = ip.to_string();
    } else if let Some(holder) = held.iter().find(|a| a.ip == address.ip) {
        return Err(Error::AlreadyExists(format!(
            "ipAddress {} is taken{}",
            address.ip,
            holder
                .id
                .as_deref()
                .map(|id| format!(" by address {id}"))
                .unwrap_or_default()
        ))
        .into());
    }
    insert_address(tx, address).await
}

/// Inserts `address`, whose `ip` is chosen.
async fn insert_address(tx: &mut Box<dyn Tx>, address: AddressRecord) -> DbResult<AddressRecord> {
    let (sql, values) = insert(&address);
    execute_insert(tx, &sql, values, &address).await?;
    Ok(address)
}

/// Runs the insert `sql` of `address`; the rows it inserted.
async fn execute_insert(
    tx: &mut Box<dyn Tx>,
    sql: &str,
    values: Vec<crate::engine::Arg>,
    address: &AddressRecord,
) -> DbResult<u64> {
    match tx.execute(sql, values).await {
        Err(crate::engine::DbError::Unique) => Err(Error::AlreadyExists(format!(
            "address {} already exists in project {}",
            address.id.as_deref().unwrap_or(&address.ip),
            address.project
        ))
        .into()),
        other => other,
    }
}

fn full(range: &Ipv4Net, address: &AddressRecord) -> Error {
    match address.address_type {
        AddressType::External => Error::ResourceExhausted(format!(
            "the region's external pool {range} has no free address left"
        )),
        AddressType::Internal => Error::ResourceExhausted(format!(
            "subnet {} ({range}, {} addresses for guests) of network {} has no free address left",
            address.subnet.as_deref().unwrap_or(""),
            ipam::capacity(range),
            address.network.as_deref().unwrap_or("")
        )),
    }
}

/// The next VXLAN network identifier of the region.
pub(crate) async fn next_vni(tx: &mut Box<dyn Tx>) -> DbResult<i64> {
    ensure_setting(tx, NEXT_VNI, "100").await?;
    let rows = tx
        .query(
            "UPDATE settings SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = ? \
             RETURNING value",
            args![NEXT_VNI],
        )
        .await?;
    let value = rows
        .first()
        .ok_or_else(|| Error::internal("the next-vni setting is missing"))?
        .text("value")?;
    Ok(value
        .parse()
        .map_err(|e| Error::internal(format!("bad next-vni {value}: {e}")))?)
}

/// Inserts `network` (with a VNI of its own) and `subnet`; returns the network as stored.
pub(crate) async fn insert_network(
    tx: &mut Box<dyn Tx>,
    mut network: NetworkRecord,
    subnet: &SubnetRecord,
) -> DbResult<NetworkRecord> {
    network.vni = next_vni(tx).await?;
    let (sql, values) = insert(&network);
    match tx.execute(&sql, values).await {
        Ok(_) => {}
        Err(crate::engine::DbError::Unique) => {
            return Err(Error::AlreadyExists(format!(
                "network {} already exists in project {}",
                network.id, network.project
            ))
            .into());
        }
        Err(e) => return Err(e),
    }
    let (sql, values) = insert(subnet);
    tx.execute(&sql, values).await?;
    Ok(network)
}

/// A new network of `project` and its one subnet, spanning the whole CIDR.
pub fn new_network(
    project: &str,
    id: &str,
    cidr: &Ipv4Net,
    display_name: &str,
    description: &str,
) -> (NetworkRecord, SubnetRecord) {
    let now = Utc::now();
    let uid = Uuid::new_v4();
    let network = NetworkRecord {
        uid,
        project: project.to_owned(),
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        description: description.to_owned(),
        cidr: cidr.to_string(),
        vni: 0,
        generation: 1,
        created_at: now,
        updated_at: now,
    };
    let subnet = SubnetRecord {
        uid: Uuid::new_v4(),
        project: project.to_owned(),
        id: format!("{}-subnet", truncated(id, 56)),
        network_uid: uid,
        network: id.to_owned(),
        display_name: String::new(),
        description: format!("the subnet of network {id}"),
        ipv4_cidr: cidr.to_string(),
        ipv6_cidr: ipam::ula_prefix(uid).to_string(),
        created_at: now,
        updated_at: now,
    };
    (network, subnet)
}

fn truncated(id: &str, max: usize) -> &str {
    let cut = id.len().min(max);
    id[..cut].trim_end_matches('-')
}

/// The subnets NICs named (by project, network and subnet as the NIC gave them) that a group of
/// creates has looked up already.
pub(crate) type SubnetsSeen = HashMap<(String, Option<String>, Option<String>), SubnetRecord>;

/// Resolves the NICs of `instance` and gives each its addresses: the subnet it names, the
/// network it names (its subnet), or the project's network `default` (made on first use);
/// the address it asks for, or the next free one. NIC references are ids here (the API
/// layer reads them out of URIs). Returns the NICs as resolved.
pub(crate) async fn assign_nics(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    instance: &InstanceRecord,
    subnets: &mut SubnetsSeen,
) -> DbResult<Vec<Nic>> {
    let mut resolved = Vec::with_capacity(instance.spec.nics.len());
    for (i, nic) in instance.spec.nics.iter().enumerate() {
        let key = (
            instance.project.clone(),
            nic.network.clone(),
            nic.subnet.clone(),
        );
        let subnet = match subnets.get(&key) {
            Some(subnet) => subnet.clone(),
            None => {
                let subnet = nic_subnet(tx, &instance.project, i, nic).await?;
                subnets.insert(key, subnet.clone());
                subnet
            }
        };
        let range: Ipv4Net = subnet
            .ipv4_cidr
            .parse()
            .map_err(|e| Error::internal(format!("bad subnet cidr {}: {e}", subnet.ipv4_cidr)))?;
        let requested = match &nic.ipv4_address {
            Some(text) => {
                let field = format!("nics[{i}].ipv4Address");
                let ip: Ipv4Addr = text.parse().map_err(|_| {
                    Error::invalid(&field, format!("{text:?} is not an IPv4 address"))
                })?;
                ipam::check_guest_address(&range, ip).map_err(|e| Error::invalid(&field, e))?;
                Some(ip)
            }
            None => None,
        };
        let ip = match requested {
            Some(ip) => take_requested(tx, engine, instance, i, &subnet, ip).await?,
            None => {
                let address = allocate(
                    tx,
                    engine,
                    nic_address(instance, i, &subnet, String::new()),
                    &range,
                )
                .await?;
                address.ip.parse().expect("allocated addresses parse")
            }
        };
        let external = match &nic.external_address {
            Some(id) => Some(take_external(tx, instance, i, id).await?),
            None => None,
        };
        let prefix = ipam::ula_prefix(subnet.network_uid);
        resolved.push(Nic {
            network: Some(subnet.network.clone()),
            subnet: Some(subnet.id.clone()),
            ipv4_address: Some(ip.to_string()),
            ipv6_address: Some(ipam::ipv6_for(&prefix, ip).to_string()),
            vlan: nic.vlan,
            mac_address: Some(ipam::mac_for(instance.uid, i)),
            external_address: external.as_ref().and(nic.external_address.clone()),
            external_ipv4_address: external,
        });
    }
    Ok(resolved)
}

/// Gives NIC `i` the address it asked for: free, or reserved by its project and held by no
/// one else (the reservation is then held by this NIC).
async fn take_requested(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    instance: &InstanceRecord,
    i: usize,
    subnet: &SubnetRecord,
    ip: Ipv4Addr,
) -> DbResult<Ipv4Addr> {
    let space = subnet.uid.to_string();
    lock_space(tx, engine, &space).await?;
    let held = handed_out(tx, &space).await?;
    let field = format!("nics[{i}].ipv4Address");
    match held.iter().find(|a| a.ip == ip.to_string()) {
        None => {
            let (sql, values) = insert(&nic_address(instance, i, subnet, ip.to_string()));
            tx.execute(&sql, values).await?;
        }
        Some(reserved)
            if reserved.id.is_some()
                && reserved.project == instance.project
                && reserved.instance_uid.is_none() =>
        {
            tx.execute(
                "UPDATE addresses SET instance_uid = ?, nic = ? WHERE uid = ?",
                args![instance.uid, i as i64, reserved.uid],
            )
            .await?;
        }
        Some(holder) => {
            return Err(Error::AlreadyExists(format!(
                "{field}: {ip} is taken in subnet {}{}",
                subnet.id,
                holder
                    .id
                    .as_deref()
                    .map(|id| format!(" (address {id})"))
                    .unwrap_or_default()
            ))
            .into());
        }
    }
    Ok(ip)
}

/// Binds the project's EXTERNAL address `id` to NIC `i`: it must exist, be EXTERNAL and be
/// held by no other NIC. Returns its IP.
async fn take_external(
    tx: &mut Box<dyn Tx>,
    instance: &InstanceRecord,
    i: usize,
    id: &str,
) -> DbResult<String> {
    let field = format!("nics[{i}].externalAddress");
    let address: Option<AddressRecord> = records(
        &tx.query(
            "SELECT * FROM addresses WHERE project = ? AND id = ?",
            args![instance.project.as_str(), id],
        )
        .await?,
    )?
    .pop();
    let address = address.ok_or_else(|| {
        Error::invalid(
            &field,
            format!(
                "address {id} does not exist in project {}",
                instance.project
            ),
        )
    })?;
    if address.address_type != AddressType::External {
        return Err(Error::invalid(
            &field,
            format!("address {id} is INTERNAL; a NIC's external address must be EXTERNAL"),
        )
        .into());
    }
    let taken = tx
        .execute(
            "UPDATE addresses SET instance_uid = ?, nic = ? WHERE uid = ? AND instance_uid IS NULL",
            args![instance.uid, i as i64, address.uid],
        )
        .await?;
    if taken == 0 {
        return Err(Error::AlreadyExists(format!(
            "{field}: address {id} ({}) is already held by another instance's NIC",
            address.ip
        ))
        .into());
    }
    Ok(address.ip)
}

/// The row of an address NIC `i` of `instance` takes by itself in `subnet`.
fn nic_address(
    instance: &InstanceRecord,
    i: usize,
    subnet: &SubnetRecord,
    ip: String,
) -> AddressRecord {
    AddressRecord {
        uid: Uuid::new_v4(),
        project: instance.project.clone(),
        id: None,
        space: subnet.uid.to_string(),
        ip,
        address_type: AddressType::Internal,
        network: Some(subnet.network.clone()),
        subnet: Some(subnet.id.clone()),
        instance_uid: Some(instance.uid),
        nic: Some(i as u32),
        display_name: String::new(),
        description: String::new(),
        created_at: instance.created_at,
    }
}

/// The subnet NIC `i` lands in.
async fn nic_subnet(
    tx: &mut Box<dyn Tx>,
    project: &str,
    i: usize,
    nic: &Nic,
) -> DbResult<SubnetRecord> {
    if let Some(id) = &nic.subnet {
        let subnet = subnet_in(tx, project, id).await?.ok_or_else(|| {
            Error::invalid(
                format!("nics[{i}].subnet"),
                format!("subnet {id} does not exist in project {project}"),
            )
        })?;
        if let Some(network) = &nic.network
            && *network != subnet.network
        {
            return Err(Error::invalid(
                format!("nics[{i}].subnet"),
                format!(
                    "subnet {id} belongs to network {}, not to network {network}",
                    subnet.network
                ),
            )
            .into());
        }
        return Ok(subnet);
    }
    let network_id = nic.network.as_deref().unwrap_or(ipam::DEFAULT_NETWORK);
    let network: Option<NetworkRecord> = records(
        &tx.query(
            "SELECT * FROM networks WHERE project = ? AND id = ?",
            args![project, network_id],
        )
        .await?,
    )?
    .pop();
    let network_uid = match network {
        Some(network) => network.uid,
        None if nic.network.is_none() => {
            let cidr = ipam::DEFAULT_NETWORK_CIDR
                .parse()
                .expect("the default CIDR parses");
            let (network, subnet) = new_network(
                project,
                ipam::DEFAULT_NETWORK,
                &cidr,
                "",
                "the project's default network",
            );
            insert_network(tx, network, &subnet).await?;
            return Ok(subnet);
        }
        None => {
            return Err(Error::invalid(
                format!("nics[{i}].network"),
                format!("network {network_id} does not exist in project {project}"),
            )
            .into());
        }
    };
    records(
        &tx.query(
            "SELECT * FROM subnets WHERE network_uid = ? ORDER BY id",
            args![network_uid],
        )
        .await?,
    )?
    .into_iter()
    .next()
    .ok_or_else(|| Error::internal(format!("network {network_id} has no subnet")).into())
}

async fn subnet_in(
    tx: &mut Box<dyn Tx>,
    project: &str,
    id: &str,
) -> DbResult<Option<SubnetRecord>> {
    Ok(records(
        &tx.query(
            "SELECT * FROM subnets WHERE project = ? AND id = ?",
            args![project, id],
        )
        .await?,
    )?
    .pop())
}

/// Gives back the addresses an instance's NICs held: those they took by themselves are
/// deleted, reservations are kept for their project.
pub(crate) async fn release_instance_addresses(
    tx: &mut Box<dyn Tx>,
    instance: Uuid,
) -> DbResult<()> {
    tx.execute(
        "DELETE FROM addresses WHERE instance_uid = ? AND id IS NULL",
        args![instance],
    )
    .await?;
    tx.execute(
        "UPDATE addresses SET instance_uid = NULL, nic = NULL WHERE instance_uid = ?",
        args![instance],
    )
    .await?;
    Ok(())
}
