//! Starting a whole region in one process: store, API, reconciler and a local host agent.

use crate::config::{Config, ms, secs};
use crate::local_agent::LocalControlPlane;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stratus_agent::images::ImageCache;
use stratus_agent::qemu::network::BridgeSettings;
use stratus_agent::qemu::{Accel, Networking, QemuConfig, QemuDriver};
use stratus_agent::sim::SimDriver;
use stratus_agent::{Agent, AgentConfig, ControlPlane, Driver};
use stratus_api::App;
use stratus_api::app::secrets::SecretsKey;
use stratus_api::app::{AppConfig, BareMetalSettings};
use stratus_reconciler::background::Driver as BackgroundDriver;
use stratus_reconciler::images::ImageImporter;
use stratus_reconciler::{Pruner, Reconciler, ReconcilerConfig};
use stratus_store::Changes;
use stratus_types::agent::HostRegistration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The organization and project every region starts with.
pub const DEFAULT_ORGANIZATION: &str = "default";
pub const DEFAULT_PROJECT: &str = "default";

/// File in the data directory holding the bootstrap administrator's API key.
pub const ADMIN_KEY_FILE: &str = "admin-api-key";

/// File in the data directory holding the key BMC credentials are sealed with.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// File in the data directory holding the credential host agents present.
pub const HOST_CREDENTIAL_FILE: &str = "host-credential";

/// How often the image importer looks for work it was not woken for (a replica's import
/// whose lease expired).
const IMPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A running region.
pub struct Region {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The file holding the bootstrap admin API key.
    pub admin_key_path: PathBuf,
    pub app: Arc<App>,
    /// Where `/metrics` is served, when `[telemetry] metrics-listen` asks for it.
    pub metrics_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Region {
    /// Opens the store in `data_dir`, then starts the API on `listen` and the background work.
    pub async fn start(data_dir: &Path, listen: &str, mut config: Config) -> anyhow::Result<Self> {
        crate::private_files::make_private(data_dir)
            .with_context(|| format!("making the data directory {} private", data_dir.display()))?;
        let data_dir = &std::fs::canonicalize(data_dir)?;
        if config.host.enabled {
            let dir = data_dir.to_owned();
            config = tokio::task::spawn_blocking(move || {
                crate::host_setup::resolve(&mut config, &dir, true);
                config
            })
            .await?;
        }
        let store = crate::db::open_region_store(data_dir, &config.database.url).await?;
        let changes = Changes::new();
        store.follow_changes(changes.clone());
        let catalog = config.catalog();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        let media_base = match config.baremetal.media_url.trim_end_matches('/') {
            "" => format!("http://{}", reachable(addr)),
            url => url.to_owned(),
        };
        let callback_url = match config.baremetal.callback_url.trim_end_matches('/') {
            "" => media_base.clone(),
            url => url.to_owned(),
        };
        let ramdisk = Arc::new(std::sync::OnceLock::new());
        if !config.baremetal.ramdisk.is_empty() {
            let _ = ramdisk.set(PathBuf::from(&config.baremetal.ramdisk));
        }
        let app = App::new(
            store.clone(),
            catalog.clone(),
            AppConfig {
                host_timeout: secs(config.reconciler.host_timeout_s),
                token_ttl: secs(config.auth.token_ttl_s),
                issuer: config.auth.issuer.clone(),
                audience: config.auth.audience.clone(),
                oidc: config.auth.oidc.clone(),
                import_sources: config.import_sources(),
                default_quotas: config.quotas.limits(),
                external_pool: stratus_core::ipam::parse_external_pool(
                    &config.networks.external_cidr,
                )
                .ok(),
                secrets_key: load_secrets_key(&data_dir.join(SECRETS_KEY_FILE))?,
                baremetal: BareMetalSettings {
                    ramdisk,
                    callback_url: Some(callback_url),
                },
                ..AppConfig::default()
            },
            changes.clone(),
        )
        .await?;
        app.ensure_default_tenancy(DEFAULT_ORGANIZATION, DEFAULT_PROJECT)
            .await?;
        app.seed_catalog_images().await?;
        app.register_built_images(&config.images.build).await?;
        let admin_key_path = data_dir.join(ADMIN_KEY_FILE);
        app.bootstrap_admin_key(DEFAULT_ORGANIZATION, |secret| {
            write_private(&admin_key_path, secret)
        })
        .await?;

        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let replica = format!("replica-{}", uuid::Uuid::new_v4());
        let reconciler_config = ReconcilerConfig {
            interval: ms(config.reconciler.interval_ms),
            host_timeout: secs(config.reconciler.host_timeout_s),
            transition_timeout: secs(config.reconciler.transition_timeout_s),
            repair_grace: secs(config.reconciler.repair_grace_s),
            audit_retention: secs(
                config
                    .reconciler
                    .audit_retention_days
                    .saturating_mul(86_400),
            ),
            ..ReconcilerConfig::default()
        };
        let mut background = BackgroundDriver::new();
        background
            .register(
                Reconciler::new(store.clone(), reconciler_config.clone(), replica.clone()),
                reconciler_config.interval,
                None,
            )
            .register(
                ImageImporter::new(
                    store.clone(),
                    changes.clone(),
                    data_dir.join("images"),
                    config.import_sources(),
                    replica,
                ),
                IMPORT_EVERY,
                Some(changes.clone()),
            )
            .register(
                Pruner::new(store.clone(), reconciler_config.audit_retention),
                reconciler_config.prune_every,
                None,
            );
        background.start(&mut tasks, cancel.clone());

        let host_credential_path = data_dir.join(HOST_CREDENTIAL_FILE);
        app.bootstrap_host_credential(|secret| write_private(&host_credential_path, secret))
            .await?;

        if config.host.enabled {
            let control_plane: Arc<dyn ControlPlane> = Arc::new(LocalControlPlane(app.clone()));
            // Guests never reach this host itself (the region's API included) anyway.
            let driver = host_driver(data_dir, &config, control_plane.clone(), vec![]).await?;
            let registration = host_registration(&config, driver.as_ref());
            let mut hosts = vec![(driver, registration.clone())];
            for n in 2..=config.host.simulated_hosts {
                let state = data_dir.join(format!("sim-hosts/{n}.json"));
                let driver = SimDriver::new(Some(state), config.sim.clone())
                    .map_err(|e| anyhow::anyhow!("starting simulated host {n}: {e}"))?;
                let name = format!("{}-{n}", registration.name);
                let driver: Arc<dyn Driver> = Arc::new(driver);
                hosts.push((
                    driver,
                    HostRegistration {
                        name,
                        ..registration.clone()
                    },
                ));
            }
            for (driver, registration) in hosts {
                // Registered before the API answers, so the first create finds the host.
                app.register_host(&registration).await?;
                let agent = Agent::new(
                    control_plane.clone(),
                    driver,
                    registration,
                    agent_config(&config),
                );
                tasks.spawn(agent.run(cancel.clone()));
            }
        }
        if config.baremetal.conductor {
            tasks.spawn(
                crate::baremetal::Conductor {
                    app: app.clone(),
                    data_dir: data_dir.to_owned(),
                    settings: config.baremetal.clone(),
                    media_base,
                    agent: agent_config(&config),
                }
                .run(cancel.clone()),
            );
        }
        let metrics_addr = match config.telemetry.metrics_listen.as_str() {
            "" => None,
            listen => Some(
                crate::telemetry::serve_metrics(listen, Some(app.clone()), cancel.clone()).await?,
            ),
        };
        let router = stratus_api::router(app.clone());
        let stop = cancel.clone();
        let limits = config.api.limits();
        let watches = app.clone();
        let requests = app.requests.clone();
        tasks.spawn(async move {
            stratus_api::server::serve(listener, router, limits, async move {
                stop.cancelled().await;
                // Watches stream until told to end; the listener waits for open responses.
                watches.watch.close();
            })
            .await;
            // Requests whose clients left go on to their end (at most the request timeout).
            requests.close();
            let _ = tokio::time::timeout(stratus_api::REQUEST_TIMEOUT, requests.wait()).await;
        });

        Ok(Self {
            addr,
            admin_key_path,
            app,
            metrics_addr,
            cancel,
            tasks,
        })
    }

    /// Runs until ctrl-c or SIGTERM, then shuts down gracefully.
    pub async fn serve_until_signal(self) -> anyhow::Result<()> {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }

    /// Stops the API and background work, letting work under way finish.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// What a host agent tells the control plane about its host: capacity from the `[host]`
/// section, how it runs guests from its driver.
pub fn host_registration(config: &Config, driver: &dyn Driver) -> HostRegistration {
    let zone = if config.host.zone.is_empty() {
        config.catalog().zones[0].id.clone()
    } else {
        config.host.zone.clone()
    };
    HostRegistration {
        name: config.host.name.clone(),
        zone,
        driver: driver.name().to_owned(),
        accelerator: driver.accelerator().map(str::to_owned),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        underlay: (config.host.networking == "bridge" && !config.host.underlay_address.is_empty())
            .then(|| config.host.underlay_address.clone()),
        vcpus: config.host.vcpus,
        memory_mb: config.host.memory_mb,
        gpus: config
            .host
            .gpus
            .iter()
            .map(|g| (g.gpu_type.clone(), g.count))
            .collect(),
    }
}

/// The agent loop's tuning, from the `[agent]` section.
pub fn agent_config(config: &Config) -> AgentConfig {
    AgentConfig {
        poll_wait: ms(config.agent.poll_wait_ms),
        orphan_grace: secs(config.agent.orphan_grace_s),
        max_attempts: config.agent.max_attempts.max(1),
        ..AgentConfig::default()
    }
}

/// The addresses the hosts of `urls` resolve to (those that resolve), for guests to be kept
/// away from.
pub fn addresses_of_urls(urls: &[String]) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let mut addresses: Vec<std::net::IpAddr> = urls
        .iter()
        .filter_map(|u| reqwest::Url::parse(u).ok())
        .filter_map(|u| {
            let host = u.host_str()?.trim_matches(['[', ']']).to_owned();
            let port = u.port_or_known_default()?;
            (host.as_str(), port).to_socket_addrs().ok()
        })
        .flatten()
        .map(|a| a.ip())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The hypervisor driver the config asks for, keeping its state under `data_dir`; guests are
/// kept away from the `protected` addresses (the control plane's).
pub async fn host_driver(
    data_dir: &Path,
    config: &Config,
    control_plane: Arc<dyn ControlPlane>,
    protected: Vec<std::net::IpAddr>,
) -> anyhow::Result<Arc<dyn Driver>> {
    if config.host.driver == "sim" {
        let driver = SimDriver::new(Some(data_dir.join("sim-host.json")), config.sim.clone())
            .map_err(|e| anyhow::anyhow!("starting the simulated host: {e}"))?;
        return Ok(Arc::new(driver));
    }
    let images = Arc::new(ImageCache::new(data_dir.join("image-cache"), control_plane));
    let exe = if config.qemu.stratus_binary.is_empty() {
        std::env::current_exe()?.display().to_string()
    } else {
        config.qemu.stratus_binary.clone()
    };
    let driver = QemuDriver::new(QemuConfig {
        vm_dir: data_dir.join("vms"),
        binary: config.qemu.binary.clone(),
        accel: match config.qemu.accel.as_str() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        },
        images,
        metadata_proxy: vec![exe, "metadata-proxy".into()],
        shutdown_grace: secs(config.qemu.shutdown_grace_s),
        networking: match config.host.networking.as_str() {
            "bridge" => Networking::Bridge(BridgeSettings {
                host_tag: config.host.name.clone(),
                underlay: config.host.underlay_address.parse().ok(),
                protected,
            }),
            _ => Networking::User,
        },
    })
    .await
    .map_err(|e| anyhow::anyhow!("starting the QEMU driver: {e}"))?;
    Ok(Arc::new(driver))
}

/// The address others reach a listener bound to `addr` at: loopback for an unspecified one.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// The region's secrets key from `path`, made (random, owner-only) at first start.
fn load_secrets_key(path: &Path) -> anyhow::Result<SecretsKey> {
    if !path.exists() {
        write_private(path, &SecretsKey::random().to_text())?;
    }
    SecretsKey::from_text(&std::fs::read_to_string(path)?)
        .with_context(|| format!("{} is not a base64 32-byte key", path.display()))
}

/// Writes `secret` to `path`, readable by its owner only.
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
