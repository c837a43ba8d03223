//! Address management: which addresses of a subnet a guest may have, and how each NIC's
//! addresses are derived.
//!
//! A network is an IPv4 CIDR from the private ranges (RFC 1918, or the shared 100.64.0.0/10);
//! networks are separate routing contexts, so two may use the same CIDR. Its subnet (one per
//! network, for now the whole CIDR) reserves four addresses that no NIC gets: the network
//! address, the gateway (the first host), the service address that answers DHCP, DNS and
//! metadata (the second host), and the broadcast address. Every other address is handed out
//! in turn (the store continues after the last one it handed out, so a released address is
//! reused last), or as a NIC or an address reservation asks for it, and held in the store under
//! a uniqueness constraint per subnet, so that no address is ever given twice.
//!
//! IPv6 follows IPv4: each network has a unique-local /64 derived from its uid, and a NIC's
//! IPv6 address is that prefix with its IPv4 address as the interface id. MAC addresses are
//! derived from the instance's uid and the NIC's position, in the locally administered range
//! QEMU uses, so a NIC keeps its MAC for its whole life.

use crate::Error;
use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use uuid::Uuid;

/// The CIDR of the network every project gets first.
pub const DEFAULT_NETWORK_CIDR: &str = "10.0.0.0/16";

/// The id of that network.
pub const DEFAULT_NETWORK: &str = "default";

/// Smallest and largest networks: a /29 leaves four addresses for guests; a /8 is the largest
/// private range.
const PREFIXES: std::ops::RangeInclusive<u8> = 8..=29;

/// The private ranges a network's CIDR must lie in.
const PRIVATE: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// Reads a network CIDR given in `field`: IPv4, in a private range, /8 to /29, written with its
/// network address (`10.1.0.0/16`, not `10.1.2.3/16`).
pub fn parse_network_cidr(field: &str, text: &str) -> Result<Ipv4Net, Error> {
    let net: Ipv4Net = text.parse().map_err(|_| {
        Error::invalid(
            field,
            format!("{text:?} is not an IPv4 CIDR such as 10.1.0.0/16"),
        )
    })?;
    if !PREFIXES.contains(&net.prefix_len()) {
        return Err(Error::invalid(
            field,
            format!(
                "{text} has a /{} prefix; networks are /{} to /{}",
                net.prefix_len(),
                PREFIXES.start(),
                PREFIXES.end()
            ),
        ));
    }
    if net.addr() != net.network() {
        return Err(Error::invalid(
            field,
            format!(
                "{text} is not a network address; did you mean {}?",
                net.trunc()
            ),
        ));
    }
    let private = PRIVATE
        .iter()
        .map(|p| p.parse::<Ipv4Net>().expect("the private ranges parse"))
        .any(|range| range.contains(&net));
    if !private {
        return Err(Error::invalid(
            field,
            format!(
                "{text} is not private; use a CIDR inside {}",
                PRIVATE.join(", ")
            ),
        ));
    }
    Ok(net)
}

/// The gateway of a subnet: its first host address.
pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    host(subnet, 1)
}

/// The service address of a subnet (DHCP, DNS, metadata): its second host address.
pub fn service_address(subnet: &Ipv4Net) -> Ipv4Addr {
    host(subnet, 2)
}

fn host(subnet: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + n)
}

/// Why `ip` is not an address a NIC of `subnet` may have, if it is not.
pub fn check_guest_address(subnet: &Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    if !subnet.contains(&ip) {
        return Err(format!("{ip} is outside subnet {subnet}"));
    }
    let reserved = [
        (subnet.network(), "the network address"),
        (gateway(subnet), "the gateway"),
        (
            service_address(subnet),
            "the service address (DHCP, DNS, metadata)",
        ),
        (subnet.broadcast(), "the broadcast address"),
    ];
    match reserved.iter().find(|(r, _)| *r == ip) {
        Some((_, what)) => Err(format!("{ip} is {what} of subnet {subnet}")),
        None => Ok(()),
    }
}

/// The addresses of `subnet` guests may have, as numbers.
pub fn guest_range(subnet: &Ipv4Net) -> std::ops::Range<u32> {
    u32::from(subnet.network()) + 3..u32::from(subnet.broadcast())
}

/// The lowest address of `subnet` a guest may have that is not in `taken`.
pub fn next_free(subnet: &Ipv4Net, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    guest_range(subnet)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains(ip))
}

/// How many addresses of `subnet` guests may have.
pub fn capacity(subnet: &Ipv4Net) -> u64 {
    (1u64 << (32 - subnet.prefix_len())).saturating_sub(4)
}

/// The unique-local /64 of a network, from its uid: `fd` and 40 bits of the uid, subnet 0.
pub fn ula_prefix(network: Uuid) -> Ipv6Net {
    let b = network.as_bytes();
    let segments = [
        0xfd00 | u16::from(b[0]),
        u16::from_be_bytes([b[1], b[2]]),
        u16::from_be_bytes([b[3], b[4]]),
        0,
        0,
        0,
        0,
        0,
    ];
    Ipv6Net::new(Ipv6Addr::from(segments), 64).expect("a /64 is a valid prefix")
}

/// A NIC's IPv6 address: its network's prefix with its IPv4 address as the interface id.
pub fn ipv6_for(prefix: &Ipv6Net, ipv4: Ipv4Addr) -> Ipv6Addr {
    let high = u128::from(prefix.network()) & !u128::from(u64::MAX);
    Ipv6Addr::from(high | u128::from(u32::from(ipv4)))
}

/// A NIC's MAC address: `52:54:00` (QEMU's locally administered prefix) and three bytes
/// derived from the instance's uid and the NIC's position.
pub fn mac_for(instance: Uuid, nic: usize) -> String {
    let b = instance.as_bytes();
    let mixed = [
        b[13] ^ (nic as u8).wrapping_mul(0x5b),
        b[14] ^ b[0],
        b[15].wrapping_add(nic as u8),
    ];
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        mixed[0], mixed[1], mixed[2]
    )
}

/// Reads the region's external address pool (`[networks] external-cidr`): any IPv4 CIDR.
pub fn parse_external_pool(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 CIDR"))?;
    if net.prefix_len() > 30 {
        return Err(format!("{text} leaves no external address to hand out"));
    }
    Ok(net.trunc())
}

/// The lowest address of the external pool not in `taken` (its network and broadcast
/// addresses, and its first host, the upstream gateway's, are never handed out).
pub fn next_free_external(pool: &Ipv4Net, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(pool.network()) + 2;
    let last = u32::from(pool.broadcast());
    (first..last)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains(ip))
}

/// Why `ip` is not an external address of `pool` to hand out, if it is not.
pub fn check_external_address(pool: &Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    let first = u32::from(pool.network()) + 2;
    let last = u32::from(pool.broadcast());
    if (first..last).contains(&u32::from(ip)) {
        Ok(())
    } else {
        Err(format!(
            "{ip} is not an external address of this region's pool {pool}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        parse_network_cidr("cidr", text).unwrap()
    }

    #[test]
    fn network_cidrs_are_private_aligned_and_sized() {
        assert_eq!(net("10.1.0.0/16").to_string(), "10.1.0.0/16");
        net("192.168.5.0/24");
        net("100.64.0.0/29");
        for (bad, says) in [
            ("10.1.2.3/16", "did you mean 10.1.0.0/16"),
            ("8.8.8.0/24", "not private"),
            ("10.0.0.0/30", "/30 prefix"),
            ("10.0.0.0/7", "/7 prefix"),
            ("fd00::/64", "not an IPv4 CIDR"),
            ("10.0.0.0", "not an IPv4 CIDR"),
        ] {
            let Err(Error::InvalidArgument { fields, .. }) = parse_network_cidr("cidr", bad) else {
                panic!("{bad} accepted");
            };
            assert!(fields[0].description.contains(says), "{bad}: {fields:?}");
            assert_eq!(fields[0].field, "cidr");
        }
    }

    #[test]
    fn the_first_guest_address_follows_the_reserved_ones() {
        let subnet = net("10.0.0.0/29");
        assert_eq!(gateway(&subnet), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(service_address(&subnet), Ipv4Addr::new(10, 0, 0, 2));
        let mut taken = HashSet::new();
        let mut handed = vec![];
        while let Some(ip) = next_free(&subnet, &taken) {
            taken.insert(ip);
            handed.push(ip.to_string());
        }
        assert_eq!(handed, ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(capacity(&subnet), 4);
        for reserved in ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.7"] {
            assert!(check_guest_address(&subnet, reserved.parse().unwrap()).is_err());
        }
        assert!(
            check_guest_address(&subnet, "10.0.1.3".parse().unwrap())
                .unwrap_err()
                .contains("outside")
        );
        check_guest_address(&subnet, "10.0.0.5".parse().unwrap()).unwrap();
    }

    #[test]
    fn ipv6_and_mac_are_stable_and_distinct() {
        let network = Uuid::new_v4();
        let prefix = ula_prefix(network);
        assert_eq!(prefix, ula_prefix(network));
        assert_eq!(prefix.prefix_len(), 64);
        assert_eq!(prefix.network().segments()[0] & 0xff00, 0xfd00);
        let v6 = ipv6_for(&prefix, Ipv4Addr::new(10, 0, 0, 5));
        assert!(prefix.contains(&v6));
        assert_eq!(v6.segments()[6..], [0x0a00, 0x0005]);
        let instance = Uuid::new_v4();
        assert_eq!(mac_for(instance, 0), mac_for(instance, 0));
        assert_ne!(mac_for(instance, 0), mac_for(instance, 1));
        assert!(mac_for(instance, 0).starts_with("52:54:00:"));
    }

    #[test]
    fn external_pools_keep_their_first_host_for_the_upstream_gateway() {
        let pool = parse_external_pool("198.51.100.0/30").unwrap();
        let taken = HashSet::new();
        assert_eq!(
            next_free_external(&pool, &taken),
            Some(Ipv4Addr::new(198, 51, 100, 2))
        );
        assert!(check_external_address(&pool, Ipv4Addr::new(198, 51, 100, 1)).is_err());
        assert!(parse_external_pool("198.51.100.0/31").is_err());
    }
}
