//! The host's data plane for QEMU guests: every NIC a tap on its network's bridge, every network
//! a gateway namespace with DHCP and the metadata address, anti-spoofing on every tap.
//!
//! Per network present on this host (by its VNI `n`):
//! - a Linux bridge `sbr{n}` that the network's taps join;
//! - a namespace `stratus-n{n}`, joined to the bridge by the veth pair `svh{n}` (host side, a
//!   bridge port) / `svn{n}` (inside), holding the subnet's gateway address and
//!   `169.254.169.254`: its own routing context, so networks may use the same CIDR, and with no
//!   route anywhere else, so guests reach their network and nothing of the host;
//! - `dnsmasq` inside it, daemonized, answering DHCP with static leases (a guest gets exactly
//!   the address the control plane gave its NIC, its gateway and its hostname);
//! - a TCP listener on `169.254.169.254:80` inside it (made by a thread that enters the
//!   namespace to bind it), which hands each connection to the metadata service of the guest
//!   whose address it comes from.
//!
//! Per NIC: a persistent tap `stp{uid}{i}` on the bridge, opened by QEMU by name. The nftables
//! table `bridge stratus` lets each tap send only with its own MAC and its own addresses (IPv4,
//! its IPv6, link-local, and `0.0.0.0` for DHCP), so a guest's source address identifies it to
//! the metadata listener and to its neighbours.
//!
//! Everything is made idempotently from what the control plane says the VMs are, so the
//! agent repairs the plane after a restart (dnsmasq outlives the agent; its pid file adopts
//! it), and everything of a network goes when its last NIC leaves the host.

use crate::driver::DriverError;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stratus_types::agent::{VmNic, VmSpec};
use tokio::process::Command;
use tokio::sync::Mutex;
use uuid::Uuid;

/// The address guests read their metadata from.
const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The tap of NIC `index` of VM `uid`.
pub fn tap_name(uid: Uuid, index: usize) -> String {
    format!("stp{}{index}", &uid.simple().to_string()[..8])
}

fn bridge(vni: u32) -> String {
    format!("sbr{vni}")
}

fn namespace(vni: u32) -> String {
    format!("stratus-n{vni}")
}

fn veth_host(vni: u32) -> String {
    format!("svh{vni}")
}

fn veth_inside(vni: u32) -> String {
    format!("svn{vni}")
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
}

/// Where a guest's metadata connection goes: the unix socket of its VM's metadata service.
pub type MetadataSocket = Arc<dyn Fn(Uuid) -> PathBuf + Send + Sync>;

/// The data plane of this host.
pub struct NetworkPlane {
    /// dnsmasq's host files and pid files.
    state_dir: PathBuf,
    metadata_socket: MetadataSocket,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    networks: HashMap<u32, Network>,
    taps: BTreeMap<String, Tap>,
}

impl NetworkPlane {
    pub fn new(state_dir: PathBuf, metadata_socket: MetadataSocket) -> Result<Self, DriverError> {
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| DriverError::Transient(format!("{}: {e}", state_dir.display())))?;
        Ok(Self {
            state_dir,
            metadata_socket,
            state: Mutex::new(State::default()),
        })
    }

    /// Makes everything `spec`'s NICs need, whatever of it exists already.
    pub async fn ensure(&self, spec: &VmSpec) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
        let mut changed = false;
        for (index, nic) in spec.nics.iter().enumerate() {
            self.ensure_network(&mut state, nic).await?;
            let name = tap_name(spec.uid, index);
            if !link_exists(&name).await {
                ip(&["tuntap", "add", "dev", &name, "mode", "tap"]).await?;
            }
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
            for vni in spec
                .nics
                .iter()
                .map(|n| n.vni)
                .collect::<std::collections::BTreeSet<_>>()
            {
                self.run_dnsmasq(&state, vni).await?;
            }
        }
        Ok(())
    }

    /// Removes the taps of VM `uid`, and every network it leaves without a NIC on this host.
    pub async fn remove(&self, uid: Uuid) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
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
        if names.is_empty() {
            return Ok(());
        }
        let mut touched = std::collections::BTreeSet::new();
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
        self.apply_filters(&state).await?;
        for vni in touched {
            if state.taps.values().any(|t| t.nic.vni == vni) {
                self.run_dnsmasq(&state, vni).await?;
            } else {
                self.remove_network(&mut state, vni).await?;
            }
        }
        Ok(())
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
            namespace(vni),
            veth_host(vni),
            veth_inside(vni),
        );
        if !link_exists(&br).await {
            ip(&["link", "add", &br, "type", "bridge"]).await?;
        }
        ip(&["link", "set", &br, "up"]).await?;
        if !Path::new("/var/run/netns").join(&ns).exists() {
            ip(&["netns", "add", &ns]).await?;
        }
        if !link_exists(&host).await {
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside, "netns", &ns,
            ])
            .await?;
        }
        ip(&["link", "set", &host, "master", &br, "up"]).await?;
        let gateway_cidr = format!("{gateway}/{}", cidr.prefix_len());
        for args in [
            vec!["addr", "replace", &gateway_cidr, "dev", &inside],
            vec!["addr", "replace", "169.254.169.254/32", "dev", &inside],
            vec!["link", "set", &inside, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut all = vec!["-n", &ns];
            all.extend(args);
            ip(&all).await?;
        }
        let guests = Arc::new(std::sync::RwLock::new(HashMap::new()));
        let metadata = self.serve_metadata(&ns, guests.clone()).await?;
        if let Some(old) = state.networks.insert(
            vni,
            Network {
                cidr,
                gateway,
                guests,
                metadata,
            },
        ) {
            old.metadata.abort();
        }
        tracing::info!(vni, %cidr, %gateway, namespace = %ns, "network plumbed on this host");
        Ok(())
    }

    async fn remove_network(&self, state: &mut State, vni: u32) -> Result<(), DriverError> {
        if let Some(network) = state.networks.remove(&vni) {
            network.metadata.abort();
        }
        self.stop_dnsmasq(vni);
        let ns = namespace(vni);
        if Path::new("/var/run/netns").join(&ns).exists() {
            ip(&["netns", "del", &ns]).await?;
        }
        for link in [veth_host(vni), bridge(vni)] {
            if link_exists(&link).await {
                ip(&["link", "del", &link]).await?;
            }
        }
        let _ = std::fs::remove_file(self.pid_file(vni));
        tracing::info!(vni, "network removed from this host");
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
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--dhcp-authoritative".to_owned(),
            // Leases live in memory only: every address is static, and a lease file would be
            // shared with every other dnsmasq of the machine.
            "--leasefile-ro".to_owned(),
            format!("--pid-file={}", self.pid_file(vni).display()),
            format!("--log-facility={}", self.dnsmasq_log(vni).display()),
        ];
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
            .args(["netns", "exec", &namespace(vni)])
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
        let script = if state.taps.is_empty() {
            "table bridge stratus {}\ndelete table bridge stratus\n".to_owned()
        } else {
            format!(
                "table bridge stratus {{}}\nflush table bridge stratus\n\
                 table bridge stratus {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
            )
        };
        nft(&script).await
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
                let path = socket(uid);
                tokio::spawn(async move {
                    let (from_guest, to_guest) = stream.into_split();
                    let _ = crate::metadata::relay(from_guest, to_guest, &path).await;
                });
            }
        }))
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
    let output = Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::Transient(format!("ip {}: {e}", args.join(" "))))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DriverError::Transient(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

async fn nft(script: &str) -> Result<(), DriverError> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("nft")
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

async fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

async fn list_links() -> Result<Vec<String>, DriverError> {
    let entries = std::fs::read_dir("/sys/class/net")
        .map_err(|e| DriverError::Transient(format!("/sys/class/net: {e}")))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}
