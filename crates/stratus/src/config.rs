//! The configuration file of `stratus serve` (TOML). Every section is optional; an absent
//! section takes the built-in defaults. Unknown keys are errors, so a typo never passes
//! silently.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use stratus_agent::sim::SimTimings;
use stratus_api::app::oidc::OidcIssuerConfig;
use stratus_api::server::ServerLimits;
use stratus_core::catalog::{Catalog, GpuCount};
use stratus_core::import_sources::ImportSources;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    pub api: ApiSection,
    pub database: DatabaseSection,
    /// The region's catalog; when given, it replaces the built-in one entirely.
    pub catalog: Option<Catalog>,
    pub host: HostSection,
    pub sim: SimTimings,
    pub qemu: QemuSection,
    pub reconciler: ReconcilerSection,
    pub auth: AuthSection,
    pub agent: AgentSection,
    pub images: ImagesSection,
    pub quotas: QuotasSection,
    pub telemetry: TelemetrySection,
    pub networks: NetworksSection,
    pub baremetal: BareMetalSection,
}

/// How bare-metal servers are deployed (see `stratus_agent::redfish`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BareMetalSection {
    /// Whether this replica runs the bare-metal conductor (inspection, provisioning, health
    /// checks and the servers' agents). Exactly one replica of a region may.
    pub conductor: bool,
    /// The deploy ramdisk ISO; empty: built from Debian's packages when the first server is
    /// provisioned (`scripts/build-deploy-ramdisk.sh`, cached in the data directory).
    pub ramdisk: String,
    /// The URL the servers' BMCs download virtual media from (this control plane as the
    /// management network reaches it); empty: the API's own address.
    pub media_url: String,
    /// The URL the deploy ramdisk on a server reaches this control plane at (the
    /// provisioning network); empty: `media-url`.
    pub callback_url: String,
    /// A directory where each server's serial console is logged as `{server id}.log`
    /// (by a console server, or the emulator's domains); empty: no console output.
    pub console_logs: String,
    /// Longest wait for the deploy ramdisk's report, in seconds.
    pub ramdisk_timeout_s: u64,
    /// How long an OS gets to shut down before the power is cut, in seconds.
    pub shutdown_grace_s: u64,
    /// How often each BMC is checked, in seconds.
    pub health_check_s: u64,
}

impl Default for BareMetalSection {
    fn default() -> Self {
        Self {
            conductor: true,
            ramdisk: String::new(),
            media_url: String::new(),
            callback_url: String::new(),
            console_logs: String::new(),
            ramdisk_timeout_s: 600,
            shutdown_grace_s: 60,
            health_check_s: 30,
        }
    }
}

/// The region's networking.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NetworksSection {
    /// The pool EXTERNAL addresses come from (e.g. `198.51.100.0/24`; its first host is the
    /// upstream gateway's); empty: none.
    pub external_cidr: String,
}

/// Metrics and traces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TelemetrySection {
    /// Address of the Prometheus `/metrics` listener (e.g. `127.0.0.1:9464`); empty: off.
    pub metrics_listen: String,
    /// Base URL of an OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`); spans go to its
    /// `/v1/traces` as JSON. Empty: no traces.
    pub otlp_endpoint: String,
}

/// The quotas every organization has unless an operator sets its own (see
/// `stratus_core::quota`); a quota left out is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct QuotasSection {
    pub cpu_cores: Option<u64>,
    /// GiB of instance memory.
    pub ram_gb: Option<u64>,
    pub gpu_count: Option<u64>,
    /// GPUs of one type, by GPU type id.
    pub gpu_count_by_type: std::collections::BTreeMap<String, u64>,
    /// TiB of instance disks.
    pub storage_tb: Option<u64>,
    pub cluster_count: Option<u64>,
    pub instance_count: Option<u64>,
    /// GiB of instance disks.
    pub disk_gb: Option<u64>,
}

impl QuotasSection {
    /// The limits by quota name.
    pub fn limits(&self) -> stratus_core::quota::Limits {
        let named = [
            ("cpuCores", self.cpu_cores),
            ("ramGb", self.ram_gb),
            ("gpuCount", self.gpu_count),
            ("storageTb", self.storage_tb),
            ("clusterCount", self.cluster_count),
            ("instanceCount", self.instance_count),
            ("diskGb", self.disk_gb),
        ];
        named
            .into_iter()
            .filter_map(|(name, limit)| limit.map(|l| (name.to_owned(), l)))
            .chain(self.gpu_count_by_type.iter().map(|(gpu_type, limit)| {
                (
                    format!("{}{gpu_type}", stratus_core::quota::GPU_TYPE_PREFIX),
                    *limit,
                )
            }))
            .collect()
    }
}

/// Where administrators may import images from (see `stratus_core::import_sources`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ImagesSection {
    /// Directories on the control plane's host whose files may be registered as images; the
    /// directories of the catalog's image files count too. None by default.
    pub import_dirs: Vec<std::path::PathBuf>,
    /// URL hosts images may be downloaded from even though they are loopback, link-local or
    /// this host's own addresses (an image mirror on this machine, say).
    pub allowed_url_hosts: Vec<String>,
    /// Images the region builds itself from Debian's packages when it does not have them yet
    /// (`debian-12`); a `serve` running real guests adds `debian-12`.
    pub build: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ApiSection {
    /// Address of the API listener (overridden by `--listen`).
    pub listen: String,
    /// Client connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head.
    pub header_read_timeout_s: u64,
    /// Seconds a connection may stay without traffic before it is closed (more than the
    /// longest request, 60 s).
    pub idle_timeout_s: u64,
}

impl Default for ApiSection {
    fn default() -> Self {
        let limits = ServerLimits::default();
        Self {
            listen: "127.0.0.1:8080".into(),
            max_connections: limits.max_connections,
            header_read_timeout_s: limits.header_read_timeout.as_secs(),
            idle_timeout_s: limits.idle_timeout.as_secs(),
        }
    }
}

impl ApiSection {
    /// The listener's limits.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: secs(self.header_read_timeout_s),
            idle_timeout: secs(self.idle_timeout_s),
        }
    }
}

/// Where the region's state lives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DatabaseSection {
    /// `postgres://user:password@host:port/database` to keep the state in PostgreSQL (or a
    /// database speaking its protocol), which several `serve` replicas can share; empty: the
    /// embedded SQLite store in the data directory. Overridden by `--database-url`.
    pub url: String,
}

/// The hypervisor host that `serve` runs in-process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HostSection {
    /// Run a host agent inside `serve`.
    pub enabled: bool,
    pub name: String,
    /// Zone of the host; the catalog's first zone when empty.
    pub zone: String,
    /// `auto` (QEMU where it can run, installed and given an image as needed; else the
    /// simulator), `qemu` or `sim`.
    pub driver: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: Vec<GpuCount>,
    /// How QEMU guests' NICs are connected: `bridge` (taps on a bridge per network, a
    /// gateway namespace with DHCP, NAT and the metadata address, VXLAN between hosts,
    /// anti-spoofing; needs root, `ip`, `nft` and `dnsmasq`), `user` (QEMU's user-mode network,
    /// metadata only), or `auto` (the default): bridge where an automatically chosen QEMU
    /// driver can have it, user otherwise.
    pub networking: String,
    /// With bridge networking: the IPv4 address of this host that carries its guests'
    /// networks to other hosts (VXLAN); empty: this host's networks stay on it.
    pub underlay_address: String,
    /// With the `sim` driver: how many simulated hosts `serve` runs (named `NAME`,
    /// `NAME-2`, …), each with this section's capacity; a region-scale test bed in one process.
    pub simulated_hosts: u32,
}

impl Default for HostSection {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "local".into(),
            zone: String::new(),
            driver: "auto".into(),
            vcpus: 256,
            memory_mb: 1024 * 1024,
            gpus: vec![GpuCount {
                gpu_type: "nvidia-h100".into(),
                count: 8,
            }],
            networking: "auto".into(),
            underlay_address: String::new(),
            simulated_hosts: 1,
        }
    }
}

/// The `qemu` driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct QemuSection {
    /// The QEMU system emulator.
    pub binary: String,
    /// `auto` (KVM when a probe shows it runs guests, else TCG), `kvm` or `tcg`.
    pub accel: String,
    /// Seconds a guest gets to power off on ACPI request before it is stopped hard.
    pub shutdown_grace_s: u64,
    /// The `stratus` binary QEMU runs as each guest's metadata proxy; empty: this binary.
    pub stratus_binary: String,
}

impl Default for QemuSection {
    fn default() -> Self {
        Self {
            binary: "qemu-system-x86_64".into(),
            accel: "auto".into(),
            shutdown_grace_s: 10,
            stratus_binary: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReconcilerSection {
    pub interval_ms: u64,
    /// A host silent this long takes no new instances and its instances go REPAIRING.
    pub host_timeout_s: u64,
    /// Longest stay in PROVISIONING, STAGING, STOPPING or SUSPENDING.
    pub transition_timeout_s: u64,
    /// How long REPAIRING lasts before an instance is given up as TERMINATED.
    pub repair_grace_s: u64,
    /// How long audit events are kept, in days.
    pub audit_retention_days: u64,
}

impl Default for ReconcilerSection {
    fn default() -> Self {
        Self {
            interval_ms: 2000,
            host_timeout_s: 15,
            transition_timeout_s: 600,
            repair_grace_s: 600,
            audit_retention_days: 90,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AuthSection {
    /// Lifetime of access tokens, in seconds.
    pub token_ttl_s: u64,
    /// `iss` of the tokens this region signs.
    pub issuer: String,
    /// `aud` of the tokens this region signs and accepts.
    pub audience: String,
    /// External OIDC issuers whose tokens are accepted beside the region's own, one
    /// `[[auth.oidc]]` table each: `issuer` and `audience` are required; `tenant-claim`
    /// (default `tenant_id`) and `roles-claim` (default `roles`) name the claims mapped to the
    /// organization and roles, or `tenant` / `roles` fix them for every user; `subject-prefix`
    /// (default `oidc:`), `jwks-cache-s` (300), `jwks-refresh-cooldown-ms` (5000) and
    /// `clock-skew-s` (30, at most 300) tune the rest.
    pub oidc: Vec<OidcIssuerConfig>,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            token_ttl_s: 900,
            issuer: "stratus".into(),
            audience: "stratus".into(),
            oidc: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AgentSection {
    /// Longest wait of an assignments poll, in milliseconds.
    pub poll_wait_ms: u64,
    /// How long a VM no instance claims is left before it is destroyed, in seconds.
    pub orphan_grace_s: u64,
    /// Attempts of a failing boot before the instance is given up as TERMINATED.
    pub max_attempts: u32,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            poll_wait_ms: 2000,
            orphan_grace_s: 60,
            max_attempts: 3,
        }
    }
}

impl Config {
    /// Reads a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text)?;
        config.catalog().validate().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            matches!(config.host.driver.as_str(), "auto" | "sim" | "qemu"),
            "host.driver is {:?}; use \"auto\", \"qemu\" or \"sim\"",
            config.host.driver
        );
        anyhow::ensure!(
            config.database.url.is_empty() || crate::db::is_database_url(&config.database.url),
            "database.url must be a postgres:// URL (or empty for the embedded store)"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&config.host.simulated_hosts)
                && (config.host.simulated_hosts == 1 || config.host.driver == "sim"),
            "host.simulated-hosts is {}; it takes 1 to 10000, and more than 1 only with \
             host.driver = \"sim\"",
            config.host.simulated_hosts
        );
        anyhow::ensure!(
            config.api.max_connections >= 1,
            "api.max-connections must be at least 1"
        );
        anyhow::ensure!(
            config.api.header_read_timeout_s >= 1 && config.api.idle_timeout_s > 60,
            "api.header-read-timeout-s must be at least 1 and api.idle-timeout-s more than 60 \
             (the longest request)"
        );
        if !config.networks.external_cidr.is_empty() {
            stratus_core::ipam::parse_external_pool(&config.networks.external_cidr)
                .map_err(|e| anyhow::anyhow!("networks.external-cidr: {e}"))?;
        }
        let catalog = config.catalog();
        for gpu_type in config.quotas.gpu_count_by_type.keys() {
            anyhow::ensure!(
                catalog.gpu_types.iter().any(|g| &g.id == gpu_type),
                "quotas.gpu-count-by-type names GPU type {gpu_type:?}, which the catalog does not have"
            );
        }
        anyhow::ensure!(
            matches!(config.host.networking.as_str(), "auto" | "user" | "bridge"),
            "host.networking is {:?}; use \"auto\", \"user\" or \"bridge\"",
            config.host.networking
        );
        anyhow::ensure!(
            config.host.underlay_address.is_empty()
                || config
                    .host
                    .underlay_address
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok(),
            "host.underlay-address is {:?}; give an IPv4 address of this host or leave it out",
            config.host.underlay_address
        );
        anyhow::ensure!(
            matches!(config.qemu.accel.as_str(), "auto" | "kvm" | "tcg"),
            "qemu.accel is {:?}; use \"auto\", \"kvm\" or \"tcg\"",
            config.qemu.accel
        );
        Ok(config)
    }

    pub fn catalog(&self) -> Catalog {
        self.catalog.clone().unwrap_or_else(Catalog::builtin)
    }

    /// Where images may be imported from: the configured directories and those of the
    /// catalog's image files, canonical (a directory that does not exist is left out, with a
    /// warning), and the allowed URL hosts.
    pub fn import_sources(&self) -> ImportSources {
        let catalog_dirs = self
            .catalog()
            .images
            .iter()
            .filter_map(|i| i.file.as_ref())
            .filter_map(|f| Path::new(f).parent().map(Path::to_path_buf))
            .collect::<Vec<_>>();
        let mut dirs = Vec::new();
        for dir in self.images.import_dirs.iter().chain(&catalog_dirs) {
            match std::fs::canonicalize(dir) {
                Ok(dir) if !dirs.contains(&dir) => dirs.push(dir),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "an image import directory cannot be used")
                }
            }
        }
        ImportSources {
            dirs,
            allowed_hosts: self.images.allowed_url_hosts.clone(),
        }
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn typos_are_errors() {
        let err = Config::parse("[host]\nvcpu = 4\n").unwrap_err().to_string();
        assert!(err.contains("vcpu"), "{err}");
    }

    #[test]
    fn a_catalog_replaces_the_builtin_one() {
        let config = Config::parse(
            r#"
            [catalog.region]
            id = "us-texas-1"
            [[catalog.zones]]
            id = "us1-a"
            [[catalog.instance-types]]
            id = "g1-xlarge"
            vcpus = 8
            memory-mb = 65536
            gpu = { type = "h100", count = 1 }
            [[catalog.gpu-types]]
            id = "h100"
            vendor = "NVIDIA"
            memory-gb = 80
            "#,
        )
        .unwrap();
        let catalog = config.catalog();
        assert_eq!(catalog.region.id, "us-texas-1");
        assert_eq!(catalog.instance_types[0].gpu.as_ref().unwrap().count, 1);
        assert!(Config::parse("[catalog.region]\nid = \"r\"\n").is_err());
    }

    #[test]
    fn oidc_issuers_take_defaults_and_survive_a_round_trip() {
        let config = Config::parse(
            r#"
            [[auth.oidc]]
            issuer = "https://idp.example.com/realms/acme"
            audience = "stratus"
            roles-claim = "realm_access.roles"
            [[auth.oidc]]
            issuer = "https://partner.example.com"
            audience = "stratus-partner"
            tenant = "partner"
            roles = ["member"]
            subject-prefix = "partner:"
            "#,
        )
        .unwrap();
        let acme = &config.auth.oidc[0];
        assert_eq!(acme.tenant_claim, "tenant_id");
        assert_eq!(acme.roles_claim, "realm_access.roles");
        assert_eq!((acme.jwks_cache_s, acme.clock_skew_s), (300, 30));
        assert_eq!(config.auth.oidc[1].roles, Some(vec!["member".to_owned()]));
        let again = Config::parse(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
        let typo = "[[auth.oidc]]\nissuer = \"https://i\"\naudience = \"a\"\nrole-claim = \"r\"\n";
        assert!(
            Config::parse(typo)
                .unwrap_err()
                .to_string()
                .contains("role-claim")
        );
        assert!(Config::parse("[[auth.oidc]]\nissuer = \"https://i\"\n").is_err());
    }
}
