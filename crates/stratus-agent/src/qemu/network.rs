//! The host's data plane for QEMU guests: every NIC a tap on its network's bridge, every network
//! a gateway namespace with DHCP, the metadata address and NAT, an overlay joining the
//! network's bridges on every host, anti-spoofing on every tap.
//!
//! Per network present on this host (by its VNI `n`):
//! - a Linux bridge `sbr{n}` that the network's taps join;
//! - with an underlay address, a VXLAN device `svx{n}` (VNI `n`, no learning) on the bridge,
//!   whose forwarding entries come from the control plane: each remote NIC's MAC to its host,
//!   and the all-zero MAC (broadcasts, ARP) to each host holding the network, so frames go to
//!   the hosts that have the network and to no other;
//! - a namespace `stratus-{host}-n{n}`, joined to the bridge by the veth pair `svh{n}` (host
//!   side, a bridge port) / `svn{n}` (inside), holding the subnet's gateway address and
//!   `169.254.169.254`: its own routing context, so networks may use the same CIDR. Every host
//!   of the network has such a gateway with the same address; the bridge filter keeps each
//!   one's frames off the overlay, so a guest always meets its own host's;
//! - an uplink veth pair `sup{n}` (host) / `sun{n}` (inside) with a /31 of `100.64.0.0/10`
//!   taken from `n`: the namespace's default route. Inside, nftables masquerades what leaves
//!   by it (egress NAT) and maps EXTERNAL addresses 1:1 to their NICs; on the host each
//!   EXTERNAL address is routed into its network's namespace, what the uplinks send out
//!   masqueraded (matched by the uplink it came in by: with `br_netfilter` loaded, frames
//!   crossing the bridges pass the host's IP hooks too, and must be left alone), and guests' traffic to the host itself, to another network's uplink or
//!   to a protected address (the control plane) dropped (`table ip stratus`);
//! - `dnsmasq` inside it, daemonized, answering DHCP with static leases (a guest gets exactly
//!   the address the control plane gave its NIC, its gateway, its hostname and its MTU);
//! - a TCP listener on `169.254.169.254:80` inside it (made by a thread that enters the
//!   namespace to bind it), which hands each connection to the metadata service of the guest
//!   whose address it comes from (at most 16 connections per guest, each for at most ten
//!   minutes, so no guest can wear out the agent).
//!
//! Per NIC: a persistent tap `stp{uid}{i}` on the bridge, opened by QEMU by name. The nftables
//! table `bridge stratus` lets each tap send only with its own MAC and its own addresses (IPv4,
//! its IPv6, link-local, and `0.0.0.0` for DHCP), so a guest's source address identifies it to
//! the metadata listener and to its neighbours. Its `input` chain drops whatever taps, gateway
//! veths and VXLAN devices deliver to the host itself (Linux answers ARP for any of its
//! addresses on any interface, so a guest with an on-link route could otherwise send to the
//! host), and the host-side links carry no IPv6 (no address to reach, no router advertisement
//! taken from a guest).
//!
//! Everything is made idempotently from what the control plane says the VMs are, so the
//! agent repairs the plane after a restart (dnsmasq outlives the agent; one running with the
//! wanted arguments is kept), and everything of a network goes when its last NIC leaves the
//! host.

use crate::driver::DriverError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stratus_types::agent::{OverlayPeer, VmNic, VmSpec};
use tokio::process::Command;
use tokio::sync::Mutex;
use uuid::Uuid;

/// The address guests read their metadata from.
const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The range the namespaces' uplinks take their /31s from.
const UPLINK_RANGE: &str = "100.64.0.0/10";

/// What VXLAN takes of each frame: the MTU guests are told when their network spans hosts.
const OVERLAY_MTU: u32 = 1450;

/// How this host's plane is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeSettings {
    /// Tells this host's namespaces apart from another host's on the same machine (its name).
    pub host_tag: String,
    /// The address carrying this host's overlay traffic; `None`: networks stay on this host.
    pub underlay: Option<Ipv4Addr>,
    /// Addresses guests may never reach through their uplink (the control plane's).
    pub protected: Vec<IpAddr>,
}

/// The tap of NIC `index` of VM `uid`.
pub fn tap_name(uid: Uuid, index: usize) -> String {
    format!("stp{}{index}", &uid.simple().to_string()[..8])
}

fn bridge(vni: u32) -> String {
    format!("sbr{vni}")
}

fn vxlan(vni: u32) -> String {
    format!("svx{vni}")
}

fn veth_host(vni: u32) -> String {
    format!("svh{vni}")
}

fn veth_inside(vni: u32) -> String {
    format!("svn{vni}")
}

fn uplink_host(vni: u32) -> String {
    format!("sup{vni}")
}

fn uplink_inside(vni: u32) -> String {
    format!("sun{vni}")
}

/// The host's and the namespace's ends of network `vni`'s uplink.
fn uplink_addresses(vni: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + 2 * (vni % (1 << 21));
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

/// One NIC plumbed on this host.
#[derive(Clone, Debug, PartialEq)]
struct Tap {
    uid: Uuid,
    hostname: String,
    nic: VmNic,
}

/// A network present on this host.
struct Network {
    cidr: ipnet::Ipv4Net,
    gateway: Ipv4Addr,
    /// The guests' addresses and the VM each belongs to, for the metadata listener.
    guests: Arc<std::sync::RwLock<HashMap<Ipv4Addr, Uuid>>>,
    metadata: tokio::task::JoinHandle<()>,
    /// The overlay entries last written to its VXLAN device.
    overlay: Option<BTreeSet<(String, String)>>,
    /// The EXTERNAL → internal address mappings last written to its namespace.
    nat: Option<BTreeMap<Ipv4Addr, Ipv4Addr>>,
}

/// Where a guest's metadata connection goes: the unix socket of its VM's metadata service.
pub type MetadataSocket = Arc<dyn Fn(Uuid) -> PathBuf + Send + Sync>;

/// The data plane of this host.
pub struct NetworkPlane {
    /// dnsmasq's pid files and logs.
    state_dir: PathBuf,
    settings: BridgeSettings,
    metadata_socket: MetadataSocket,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    networks: HashMap<u32, Network>,
    taps: BTreeMap<String, Tap>,
    /// The overlay as the control plane last described it.
    peers: Vec<OverlayPeer>,
    /// The EXTERNAL addresses routed into namespaces, and the host table, as last written.
    host_routes: Option<BTreeMap<Ipv4Addr, u32>>,
    /// VMs whose NICs were removed.
    removed: std::collections::HashSet<Uuid>,
}

impl NetworkPlane {
    pub fn new(
        state_dir: PathBuf,
        settings: BridgeSettings,
        metadata_socket: MetadataSocket,
    ) -> Result<Self, DriverError> {
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| DriverError::Transient(format!("{}: {e}", state_dir.display())))?;
        Ok(Self {
            state_dir,
            settings,
            metadata_socket,
            state: Mutex::new(State::default()),
        })
    }

    fn namespace(&self, vni: u32) -> String {
        format!("stratus-{}-n{vni}", self.settings.host_tag)
    }

    /// Makes everything `spec`'s NICs need, whatever of it exists already; for a VM removed
    /// earlier, only when `revive`.
    pub async fn ensure(&self, spec: &VmSpec, revive: bool) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
        if revive {
            state.removed.remove(&spec.uid);
        } else if state.removed.contains(&spec.uid) {
            return Ok(());
        }
        let mut changed = false;
        for (index, nic) in spec.nics.iter().enumerate() {
            self.ensure_network(&mut state, nic).await?;
            let name = tap_name(spec.uid, index);
            if !link_exists(&name).await {
                ip(&["tuntap", "add", "dev", &name, "mode", "tap"]).await?;
            }
            no_ipv6(&name);
            ip(&["link", "set", &name, "master", &bridge(nic.vni), "up"]).await?;
            let tap = Tap {
                uid: spec.uid,
                hostname: spec.hostname.clone(),
                nic: nic.clone(),
            };
            if state.taps.get(&name) != Some(&tap) {
                state.taps.insert(name, tap);
                changed = true;
            }
            let network = &state.networks[&nic.vni];
            if let Ok(ip) = nic.ipv4.parse() {
                network.guests.write().unwrap().insert(ip, spec.uid);
            }
        }
        if changed {
            self.apply_filters(&state).await?;
        }
        let vnis: BTreeSet<u32> = spec.nics.iter().map(|n| n.vni).collect();
        for vni in vnis {
            self.run_dnsmasq(&state, vni).await?;
            self.apply_nat(&mut state, vni).await?;
            self.apply_overlay(&mut state, vni).await?;
        }
        self.apply_host(&mut state).await
    }

    /// Takes the control plane's description of where this host's networks' remote NICs are,
    /// and writes what changed into the VXLAN devices.
    pub async fn observe_overlay(&self, peers: &[OverlayPeer]) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
        if state.peers == peers {
            return Ok(());
        }
        state.peers = peers.to_vec();
        let vnis: Vec<u32> = state.networks.keys().copied().collect();
        for vni in vnis {
            self.apply_overlay(&mut state, vni).await?;
        }
        Ok(())
    }

    /// Removes the taps of VM `uid`, and every network it leaves without a NIC on this host.
    pub async fn remove(&self, uid: Uuid) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
        state.removed.insert(uid);
        let names: Vec<String> = state
            .taps
            .iter()
            .filter(|(_, t)| t.uid == uid)
            .map(|(n, _)| n.clone())
            .collect();
        // Taps left from before a restart are known by name alone.
        let prefix = tap_name(uid, 0);
        let prefix = &prefix[..prefix.len() - 1];
        for name in list_links().await? {
            if name.starts_with(prefix) && !names.contains(&name) {
                let _ = ip(&["link", "del", &name]).await;
            }
        }
        let mut touched = BTreeSet::new();
        for name in &names {
            if let Some(tap) = state.taps.remove(name) {
                touched.insert(tap.nic.vni);
                if let Some(network) = state.networks.get(&tap.nic.vni)
                    && let Ok(ip) = tap.nic.ipv4.parse()
                {
                    network.guests.write().unwrap().remove(&ip);
                }
            }
            if link_exists(name).await {
                ip(&["link", "del", name]).await?;
            }
        }
        if !names.is_empty() {
            self.apply_filters(&state).await?;
        }
        // Networks left without a NIC go, including one a failed earlier attempt left behind.
        let vnis: Vec<u32> = state.networks.keys().copied().collect();
        for vni in vnis {
            if state.taps.values().any(|t| t.nic.vni == vni) {
                if touched.contains(&vni) {
                    self.run_dnsmasq(&state, vni).await?;
                    self.apply_nat(&mut state, vni).await?;
                }
            } else {
                self.remove_network(&mut state, vni).await?;
            }
        }
        self.apply_host(&mut state).await
    }

    async fn ensure_network(&self, state: &mut State, nic: &VmNic) -> Result<(), DriverError> {
        let vni = nic.vni;
        if state.networks.contains_key(&vni) && link_exists(&bridge(vni)).await {
            return Ok(());
        }
        let cidr: ipnet::Ipv4Net = nic
            .cidr
            .parse()
            .map_err(|e| DriverError::Permanent(format!("bad subnet {}: {e}", nic.cidr)))?;
        let gateway: Ipv4Addr = nic
            .gateway
            .parse()
            .map_err(|e| DriverError::Permanent(format!("bad gateway {}: {e}", nic.gateway)))?;
        let (br, ns, host, inside) = (
            bridge(vni),
            self.namespace(vni),
            veth_host(vni),
            veth_inside(vni),
        );
        if !link_exists(&br).await {
            ip(&["link", "add", &br, "type", "bridge"]).await?;
        }
        no_ipv6(&br);
        ip(&["link", "set", &br, "up"]).await?;
        if let Some(underlay) = self.settings.underlay {
            let device = vxlan(vni);
            if !link_exists(&device).await {
                ip(&[
                    "link",
                    "add",
                    &device,
                    "type",
                    "vxlan",
                    "id",
                    &vni.to_string(),
                    "local",
                    &underlay.to_string(),
                    "dstport",
                    "4789",
                    "nolearning",
                ])
                .await?;
            }
            no_ipv6(&device);
            ip(&["link", "set", &device, "mtu", &OVERLAY_MTU.to_string()]).await?;
            ip(&["link", "set", &device, "master", &br, "up"]).await?;
        }
        if !Path::new("/var/run/netns").join(&ns).exists() {
            ip(&["netns", "add", &ns]).await?;
        }
        if !link_exists(&host).await {
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside, "netns", &ns,
            ])
            .await?;
        }
        no_ipv6(&host);
        ip(&["link", "set", &host, "master", &br, "up"]).await?;
        let (up_host, up_inside) = (uplink_host(vni), uplink_inside(vni));
        if !link_exists(&up_host).await {
            ip(&[
                "link", "add", &up_host, "type", "veth", "peer", "name", &up_inside, "netns", &ns,
            ])
            .await?;
        }
        no_ipv6(&up_host);
        let (host_end, inside_end) = uplink_addresses(vni);
        ip(&[
            "addr",
            "replace",
            &format!("{host_end}/31"),
            "dev",
            &up_host,
        ])
        .await?;
        ip(&["link", "set", &up_host, "up"]).await?;
        let gateway_cidr = format!("{gateway}/{}", cidr.prefix_len());
        let uplink_cidr = format!("{inside_end}/31");
        let host_end = host_end.to_string();
        for args in [
            vec!["addr", "replace", &gateway_cidr, "dev", &inside],
            vec!["addr", "replace", "169.254.169.254/32", "dev", &inside],
            vec!["link", "set", &inside, "up"],
            vec!["addr", "replace", &uplink_cidr, "dev", &up_inside],
            vec!["link", "set", &up_inside, "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "replace", "default", "via", &host_end],
        ] {
            let mut all = vec!["-n", &ns];
            all.extend(args);
            ip(&all).await?;
        }
        sysctl(Some(&ns), "net/ipv4/ip_forward", "1").await?;
        let guests = Arc::new(std::sync::RwLock::new(HashMap::new()));
        let metadata = self.serve_metadata(&ns, guests.clone()).await?;
        if let Some(old) = state.networks.insert(
            vni,
            Network {
                cidr,
                gateway,
                guests,
                metadata,
                overlay: None,
                nat: None,
            },
        ) {
            old.metadata.abort();
        }
        tracing::info!(vni, %cidr, %gateway, namespace = %ns, "network plumbed on this host");
        Ok(())
    }

    async fn remove_network(&self, state: &mut State, vni: u32) -> Result<(), DriverError> {
        // Forgotten only once all of it is gone, so a failed attempt is taken up again.
        if let Some(network) = state.networks.get(&vni) {
            network.metadata.abort();
        }
        self.stop_dnsmasq(vni);
        let ns = self.namespace(vni);
        if Path::new("/var/run/netns").join(&ns).exists() {
            ip(&["netns", "del", &ns]).await?;
        }
        for link in [veth_host(vni), uplink_host(vni), vxlan(vni), bridge(vni)] {
            if link_exists(&link).await {
                ip(&["link", "del", &link]).await?;
            }
        }
        let _ = std::fs::remove_file(self.pid_file(vni));
        state.networks.remove(&vni);
        tracing::info!(vni, "network removed from this host");
        Ok(())
    }

    /// Writes network `vni`'s overlay entries (when it has an overlay and they changed): each
    /// remote NIC's MAC to its host, the all-zero MAC to every host holding the network.
    async fn apply_overlay(&self, state: &mut State, vni: u32) -> Result<(), DriverError> {
        if self.settings.underlay.is_none() {
            return Ok(());
        }
        let mut wanted = BTreeSet::new();
        for peer in state.peers.iter().filter(|p| p.vni == vni) {
            wanted.insert((peer.mac.clone(), peer.underlay.clone()));
            wanted.insert(("00:00:00:00:00:00".to_owned(), peer.underlay.clone()));
        }
        let Some(network) = state.networks.get_mut(&vni) else {
            return Ok(());
        };
        if network.overlay.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let device = vxlan(vni);
        let present = overlay_entries(&device).await?;
        for (mac, dst) in present.difference(&wanted) {
            bridge_fdb(&["del", mac, "dev", &device, "dst", dst, "self"]).await?;
        }
        for (mac, dst) in wanted.difference(&present) {
            // The all-zero MAC has one entry per host (append); any other MAC one in all.
            let verb = if mac == "00:00:00:00:00:00" {
                "append"
            } else {
                "replace"
            };
            bridge_fdb(&[verb, mac, "dev", &device, "dst", dst, "self", "permanent"]).await?;
        }
        tracing::info!(vni, entries = wanted.len(), "overlay entries written");
        network.overlay = Some(wanted);
        Ok(())
    }

    /// Writes network `vni`'s NAT (when its EXTERNAL mappings changed): egress masqueraded to
    /// the uplink, each EXTERNAL address mapped 1:1 to its NIC, nothing else let in.
    async fn apply_nat(&self, state: &mut State, vni: u32) -> Result<(), DriverError> {
        let wanted: BTreeMap<Ipv4Addr, Ipv4Addr> = state
            .taps
            .values()
            .filter(|t| t.nic.vni == vni)
            .filter_map(|t| Some((t.nic.external_ipv4.parse().ok()?, t.nic.ipv4.parse().ok()?)))
            .collect();
        let Some(network) = state.networks.get_mut(&vni) else {
            return Ok(());
        };
        if network.nat.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let uplink = uplink_inside(vni);
        let mut dnat = String::new();
        let mut snat = String::new();
        for (external, internal) in &wanted {
            dnat.push_str(&format!("    ip daddr {external} dnat to {internal}\n"));
            snat.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {internal} snat to {external}\n"
            ));
        }
        let script = format!(
            "table ip stratus {{}}\nflush table ip stratus\n\
             table ip stratus {{\n\
             \x20 chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n\
             \x20 chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{snat}\
             \x20   oifname \"{uplink}\" masquerade\n  }}\n\
             \x20 chain forward {{\n    type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"{uplink}\" ct state established,related accept\n\
             \x20   iifname \"{uplink}\" ct status dnat accept\n\
             \x20   iifname \"{uplink}\" drop\n  }}\n}}\n"
        );
        nft_in(Some(&self.namespace(vni)), &script).await?;
        network.nat = Some(wanted);
        Ok(())
    }

    /// Writes the host's part (when it changed): forwarding on, the uplinks' range
    /// masqueraded to the outside, each EXTERNAL address routed into its network's namespace,
    /// and guests kept off the host, other networks' uplinks and protected addresses.
    async fn apply_host(&self, state: &mut State) -> Result<(), DriverError> {
        let wanted: BTreeMap<Ipv4Addr, u32> = state
            .taps
            .values()
            .filter_map(|t| Some((t.nic.external_ipv4.parse().ok()?, t.nic.vni)))
            .collect();
        if state.networks.is_empty() {
            if state.host_routes.is_some() || nft_table_exists("ip", "stratus").await {
                nft_in(None, "table ip stratus {}\ndelete table ip stratus\n").await?;
            }
            state.host_routes = None;
            return Ok(());
        }
        if state.host_routes.as_ref() == Some(&wanted) {
            return Ok(());
        }
        sysctl(None, "net/ipv4/ip_forward", "1").await?;
        let previous = state.host_routes.clone().unwrap_or_default();
        for external in previous.keys().filter(|e| !wanted.contains_key(e)) {
            let _ = ip(&["route", "del", &format!("{external}/32")]).await;
        }
        for (external, vni) in &wanted {
            let (_, inside_end) = uplink_addresses(*vni);
            ip(&[
                "route",
                "replace",
                &format!("{external}/32"),
                "via",
                &inside_end.to_string(),
                "dev",
                &uplink_host(*vni),
            ])
            .await?;
        }
        let protected: Vec<String> = self
            .settings
            .protected
            .iter()
            .filter(|a| a.is_ipv4())
            .map(ToString::to_string)
            .collect();
        let protect = if protected.is_empty() {
            String::new()
        } else {
            format!(
                "    iifname \"sup*\" ip daddr {{ {} }} drop\n",
                protected.join(", ")
            )
        };
        let script = format!(
            "table ip stratus {{}}\nflush table ip stratus\n\
             table ip stratus {{\n\
             \x20 chain input {{\n    type filter hook input priority filter; policy accept;\n\
             \x20   iifname \"sup*\" ct state established,related accept\n\
             \x20   iifname \"sup*\" drop\n  }}\n\
             \x20 chain forward {{\n    type filter hook forward priority filter; policy accept;\n\
             \x20   iifname \"sup*\" ct state established,related accept\n\
             \x20   iifname \"sup*\" oifname \"sup*\" drop\n{protect}  }}\n\
             \x20 chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
             \x20   iifname \"sup*\" oifname != \"sup*\" ip saddr {UPLINK_RANGE} masquerade\n  }}\n}}\n"
        );
        nft_in(None, &script).await?;
        state.host_routes = Some(wanted);
        Ok(())
    }

    fn pid_file(&self, vni: u32) -> PathBuf {
        self.state_dir.join(format!("dnsmasq-{vni}.pid"))
    }

    /// The pid of the network's dnsmasq, if it runs.
    fn dnsmasq_pid(&self, vni: u32) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file(vni))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let pid_file = self.pid_file(vni).display().to_string();
        String::from_utf8_lossy(&cmdline)
            .contains(&pid_file)
            .then_some(pid)
    }

    fn stop_dnsmasq(&self, vni: u32) {
        if let Some(pid) = self.dnsmasq_pid(vni) {
            // SAFETY: a plain signal to a process this plane started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// The arguments the network's dnsmasq runs with: its static leases among them (on the
    /// command line, because dnsmasq drops to an unprivileged user that cannot read the private
    /// state directory).
    fn dnsmasq_args(&self, state: &State, vni: u32) -> Option<Vec<String>> {
        let network = state.networks.get(&vni)?;
        let netmask = network.cidr.netmask();
        let mut args = vec![
            "dnsmasq".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--bind-interfaces".to_owned(),
            format!("--interface={}", veth_inside(vni)),
            format!(
                "--dhcp-range={},static,{netmask},1h",
                network.cidr.network()
            ),
            format!("--dhcp-option=option:router,{}", network.gateway),
            format!("--dhcp-option=option:dns-server,{}", network.gateway),
            format!(
                "--dhcp-option=option:mtu,{}",
                if self.settings.underlay.is_some() {
                    OVERLAY_MTU
                } else {
                    1500
                }
            ),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--dhcp-authoritative".to_owned(),
            // Leases live in memory only: every address is static, and a lease file would be
            // shared with every other dnsmasq of the machine.
            "--leasefile-ro".to_owned(),
            format!("--pid-file={}", self.pid_file(vni).display()),
            format!("--log-facility={}", self.dnsmasq_log(vni).display()),
        ];
        // Names beyond the network are asked of the host's own resolvers, through the uplink
        // (those on the host's loopback are out of the namespace's reach).
        for server in upstream_resolvers() {
            args.push(format!("--server={server}"));
        }
        for tap in state.taps.values().filter(|t| t.nic.vni == vni) {
            args.push(format!(
                "--dhcp-host={},{},{}",
                tap.nic.mac, tap.nic.ipv4, tap.hostname
            ));
        }
        Some(args)
    }

    fn dnsmasq_log(&self, vni: u32) -> PathBuf {
        self.state_dir.join(format!("dnsmasq-{vni}.log"))
    }

    /// Runs the network's dnsmasq with its current leases: one already running with exactly
    /// these arguments is kept (an agent restart changes nothing), any other is replaced.
    async fn run_dnsmasq(&self, state: &State, vni: u32) -> Result<(), DriverError> {
        let Some(args) = self.dnsmasq_args(state, vni) else {
            return Ok(());
        };
        if let Some(pid) = self.dnsmasq_pid(vni) {
            let running = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let wanted: Vec<u8> = args
                .iter()
                .flat_map(|a| [a.as_bytes(), b"\0"].concat())
                .collect();
            if running == wanted {
                return Ok(());
            }
            self.stop_dnsmasq(vni);
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        // dnsmasq daemonizes: no pipes to it, or waiting for the starter would wait for the
        // daemon.
        let status = Command::new("ip")
            .args(["netns", "exec", &self.namespace(vni)])
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .map_err(|e| DriverError::Transient(format!("starting dnsmasq: {e}")))?;
        if !status.success() {
            return Err(DriverError::Transient(format!(
                "dnsmasq for network {vni} did not start ({status}); see {}",
                self.dnsmasq_log(vni).display()
            )));
        }
        Ok(())
    }

    /// Regenerates the `bridge stratus` table from the taps.
    async fn apply_filters(&self, state: &State) -> Result<(), DriverError> {
        let mut rules = String::new();
        for (name, tap) in &state.taps {
            let nic = &tap.nic;
            rules.push_str(&format!(
                "    iifname \"{name}\" ether saddr != {mac} drop\n\
                 \x20   iifname \"{name}\" arp saddr ether != {mac} drop\n\
                 \x20   iifname \"{name}\" arp saddr ip != {ip} drop\n\
                 \x20   iifname \"{name}\" ip saddr != {{ {ip}, 0.0.0.0 }} drop\n",
                mac = nic.mac,
                ip = nic.ipv4
            ));
            let ipv6 = if nic.ipv6.is_empty() {
                String::new()
            } else {
                format!("{}, ", nic.ipv6)
            };
            rules.push_str(&format!(
                "    iifname \"{name}\" ip6 saddr != {{ {ipv6}fe80::/10, :: }} drop\n"
            ));
        }
        // Each host's gateway serves its own guests: its frames never cross the overlay, nor
        // do remote frames reach it.
        rules.push_str(
            "    iifname \"svh*\" oifname \"svx*\" drop\n\
             \x20   iifname \"svx*\" oifname \"svh*\" drop\n",
        );
        let script = if state.taps.is_empty() {
            "table bridge stratus {}\ndelete table bridge stratus\n".to_owned()
        } else {
            // Nothing that comes in by a guest's tap, a gateway's veth or the overlay is for
            // the host itself: not its IPv4 addresses (answered by ARP on any interface), not
            // its IPv6 ones.
            format!(
                "table bridge stratus {{}}\nflush table bridge stratus\n\
                 table bridge stratus {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n\
                 \x20 chain input {{\n    type filter hook input priority 0; policy accept;\n\
                 \x20   iifname \"stp*\" drop\n    iifname \"svh*\" drop\n    iifname \"svx*\" drop\n  }}\n}}\n"
            )
        };
        nft_in(None, &script).await
    }

    /// Binds `169.254.169.254:80` inside namespace `ns` and serves each connection from the
    /// metadata service of the guest whose address it comes from.
    async fn serve_metadata(
        &self,
        ns: &str,
        guests: Arc<std::sync::RwLock<HashMap<Ipv4Addr, Uuid>>>,
    ) -> Result<tokio::task::JoinHandle<()>, DriverError> {
        let listener = bind_in_namespace(ns, SocketAddr::from((METADATA_ADDRESS, 80))).await?;
        let socket = self.metadata_socket.clone();
        let limit = ConnectionLimit::default();
        Ok(tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let std::net::IpAddr::V4(address) = peer.ip() else {
                    continue;
                };
                let Some(uid) = guests.read().unwrap().get(&address).copied() else {
                    // Not an address of a guest here: nothing to say to it.
                    continue;
                };
                let Some(open) = limit.open(uid) else {
                    // A guest holding this many connections is not reading metadata.
                    continue;
                };
                let path = socket(uid);
                tokio::spawn(async move {
                    let _open = open;
                    let (from_guest, to_guest) = stream.into_split();
                    let relay = crate::metadata::relay(from_guest, to_guest, &path);
                    let _ = tokio::time::timeout(METADATA_CONNECTION_LIFE, relay).await;
                });
            }
        }))
    }
}

/// How many metadata connections one guest may hold open at once.
const METADATA_CONNECTIONS_PER_GUEST: usize = 16;

/// How long a metadata connection may last (long polls wait up to a few minutes).
const METADATA_CONNECTION_LIFE: std::time::Duration = std::time::Duration::from_secs(600);

/// The metadata connections each guest holds, so that one guest opening connections without
/// end takes nothing from the others or from the agent.
#[derive(Clone, Default)]
struct ConnectionLimit(Arc<std::sync::Mutex<HashMap<Uuid, usize>>>);

/// One open connection, counted until dropped.
struct OpenConnection {
    limit: ConnectionLimit,
    uid: Uuid,
}

impl ConnectionLimit {
    /// Counts a new connection of guest `uid`, or `None` when it holds as many as it may.
    fn open(&self, uid: Uuid) -> Option<OpenConnection> {
        let mut open = self.0.lock().unwrap();
        let count = open.entry(uid).or_default();
        if *count >= METADATA_CONNECTIONS_PER_GUEST {
            return None;
        }
        *count += 1;
        Some(OpenConnection {
            limit: self.clone(),
            uid,
        })
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut open = self.limit.0.lock().unwrap();
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// A TCP listener bound inside network namespace `ns`: a thread of its own enters the
/// namespace, binds, and ends; the socket keeps to the namespace it was made in.
async fn bind_in_namespace(
    ns: &str,
    address: SocketAddr,
) -> Result<tokio::net::TcpListener, DriverError> {
    let path = Path::new("/var/run/netns").join(ns);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let bind = || -> std::io::Result<std::net::TcpListener> {
            use std::os::fd::AsRawFd;
            let target = std::fs::File::open(&path)?;
            // SAFETY: changes the network namespace of this thread only, which ends right after.
            if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let listener = std::net::TcpListener::bind(address)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let _ = sender.send(bind());
    });
    let listener = receiver
        .await
        .map_err(|_| {
            DriverError::Transient("binding the metadata address: the thread died".into())
        })?
        .map_err(|e| {
            DriverError::Transient(format!("binding the metadata address in {ns}: {e}"))
        })?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| DriverError::Transient(e.to_string()))
}

async fn ip(args: &[&str]) -> Result<(), DriverError> {
    run("ip", args).await
}

async fn bridge_fdb(args: &[&str]) -> Result<(), DriverError> {
    let mut all = vec!["fdb"];
    all.extend(args);
    run("bridge", &all).await
}

/// Runs `program` with `args`; its standard error is the failure's message.
async fn run(program: &str, args: &[&str]) -> Result<(), DriverError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::Transient(format!("{command}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DriverError::Transient(format!(
            "{command} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Runs an nftables script on the host, or inside namespace `ns`.
async fn nft_in(ns: Option<&str>, script: &str) -> Result<(), DriverError> {
    use tokio::io::AsyncWriteExt;
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    let mut child = command
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::Transient(format!("nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| DriverError::Transient(format!("nft: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| DriverError::Transient(format!("nft: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DriverError::Transient(format!(
            "nft failed: {}\n{script}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Whether link `name` exists in this process's network namespace (asked of the kernel, not
/// of `/sys`, which shows the namespace of whoever mounted it).
async fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The links of this process's network namespace.
async fn list_links() -> Result<Vec<String>, DriverError> {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .await
        .map_err(|e| DriverError::Transient(format!("ip link show: {e}")))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_owned())
        })
        .collect())
}

async fn nft_table_exists(family: &str, name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", family, name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Sets `/proc/sys/{key}` on the host or inside namespace `ns`.
async fn sysctl(ns: Option<&str>, key: &str, value: &str) -> Result<(), DriverError> {
    let path = format!("/proc/sys/{key}");
    match ns {
        None => {
            std::fs::write(&path, value).map_err(|e| DriverError::Transient(format!("{path}: {e}")))
        }
        Some(ns) => {
            let status = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "sh",
                    "-c",
                    &format!("echo {value} > {path}"),
                ])
                .status()
                .await
                .map_err(|e| DriverError::Transient(format!("{path} in {ns}: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(DriverError::Transient(format!("{path} in {ns}: {status}")))
            }
        }
    }
}

/// The remote entries (`MAC`, destination) of VXLAN device `device`.
async fn overlay_entries(device: &str) -> Result<BTreeSet<(String, String)>, DriverError> {
    let output = Command::new("bridge")
        .args(["fdb", "show", "dev", device])
        .output()
        .await
        .map_err(|e| DriverError::Transient(format!("bridge fdb show: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let dst = words.iter().position(|w| *w == "dst")?;
            Some((words[0].to_owned(), words.get(dst + 1)?.to_string()))
        })
        .collect())
}

/// The host's resolvers (`/etc/resolv.conf`) that a namespace can reach: not loopback.
fn upstream_resolvers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .filter(|address| !address.is_loopback())
        .collect()
}

/// Takes IPv6 off host-side link `name`: the host gets no address a guest could reach on it,
/// and takes no router advertisement from a guest. (Nothing to do where IPv6 is off.)
fn no_ipv6(name: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_opening_connections_without_end_is_held_to_its_share() {
        let limit = ConnectionLimit::default();
        let (greedy, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut held: Vec<_> = (0..METADATA_CONNECTIONS_PER_GUEST)
            .map(|_| limit.open(greedy).expect("within its share"))
            .collect();
        assert!(limit.open(greedy).is_none(), "one more is refused");
        assert!(limit.open(other).is_some(), "another guest is not affected");
        held.pop();
        assert!(
            limit.open(greedy).is_some(),
            "a closed connection frees its place"
        );
    }
}
