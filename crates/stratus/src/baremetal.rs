//! The bare-metal conductor: the region's work on its servers.
//!
//! It follows the servers' rows — woken by every write to a server, and every five seconds
//! regardless, which is when it sees registrations made through another replica and health
//! checks fall due. It inspects newly registered servers, runs provisioning jobs, checks each BMC every
//! `[baremetal] health-check-s`, and runs one agent loop with a [`RedfishDriver`] for each
//! server that has a host — the loop that deploys, powers and cleans the server for the
//! instance placed on it. Why this runs in the control plane rather than on a host is argued
//! in `stratus_agent::redfish`.

use crate::config::{BareMetalSection, secs};
use crate::local_agent::LocalControlPlane;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use stratus_agent::images::ImageCache;
use stratus_agent::redfish::{
    DeployService, RamdiskJob, RamdiskSession, RedfishConfig, RedfishDriver,
};
use stratus_agent::{Agent, AgentConfig, ControlPlane};
use stratus_api::App;
use stratus_api::app::deploy::DeployTask;
use stratus_api::app::servers::server_host_registration;
use stratus_store::ServerRecord;
use stratus_types::ProvisioningState;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The deploy ramdisk's build, embedded so that a region builds it wherever it runs.
const RAMDISK_SCRIPT: &str = include_str!("../../../scripts/build-deploy-ramdisk.sh");
const RAMDISK_SCRIPT_LIB: &str = include_str!("../../../scripts/lib/debian-initramfs.sh");

/// One ramdisk build at a time.
static RAMDISK_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes sure the region has its deploy ramdisk: the configured one, or one built from
/// Debian's packages into the data directory (cached there; about ten seconds the first time).
async fn ensure_ramdisk(app: &App, data_dir: &Path) -> Result<(), String> {
    let _one = RAMDISK_BUILD.lock().await;
    if app.config.baremetal.ramdisk.get().is_some() {
        return Ok(());
    }
    let dir = data_dir.join("deploy-ramdisk");
    let scripts = dir.join("scripts");
    let script = scripts.join("build-deploy-ramdisk.sh");
    let written = std::fs::create_dir_all(scripts.join("lib"))
        .and_then(|()| std::fs::write(&script, RAMDISK_SCRIPT))
        .and_then(|()| {
            std::fs::write(
                scripts.join("lib").join("debian-initramfs.sh"),
                RAMDISK_SCRIPT_LIB,
            )
        });
    written.map_err(|e| format!("writing the ramdisk build to {}: {e}", dir.display()))?;
    tracing::info!("building the deploy ramdisk from Debian's packages");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(dir.join("out"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running the ramdisk build: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "building the deploy ramdisk failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let iso = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let _ = app.config.baremetal.ramdisk.set(iso);
    Ok(())
}

/// The control plane's side of one server's deploys.
struct AppDeploy {
    app: Arc<App>,
    server: Uuid,
    media_base: String,
}

#[async_trait::async_trait]
impl DeployService for AppDeploy {
    fn open(&self, instance: Uuid, job: RamdiskJob) -> RamdiskSession {
        let task = match job {
            RamdiskJob::Deploy { image } => DeployTask::Deploy { image },
            RamdiskJob::Clean => DeployTask::Clean,
        };
        let (token, outcome) = self.app.open_deploy(instance, task);
        RamdiskSession {
            media_url: format!("{}/internal/v1/deploy/{token}/ramdisk.iso", self.media_base),
            token,
            outcome,
        }
    }

    fn close(&self, token: &str) {
        self.app.close_deploy(token);
    }

    fn publish_seed(&self, instance: Uuid, iso: Vec<u8>) -> String {
        let token = self.app.publish_seed(instance, iso);
        format!("{}/internal/v1/deploy/{token}/seed.iso", self.media_base)
    }

    fn withdraw_seed(&self, instance: Uuid) {
        self.app.withdraw_seed(instance);
    }

    fn power_changed(&self) {
        let (app, server) = (self.app.clone(), self.server);
        tokio::spawn(async move {
            if let Err(e) = app.check_server_health(server).await {
                tracing::warn!(%server, error = %e, "reading a server's power");
            }
        });
    }

    async fn server_failed(&self, reason: String) {
        if let Err(e) = self.app.fail_server(self.server, reason).await {
            tracing::error!(server = %self.server, error = %e, "marking a server failed");
        }
    }
}

/// The conductor's settings.
pub struct Conductor {
    pub app: Arc<App>,
    pub data_dir: PathBuf,
    pub settings: BareMetalSection,
    /// Where BMCs download media from (no trailing slash).
    pub media_base: String,
    pub agent: AgentConfig,
}

impl Conductor {
    fn driver(
        &self,
        server: &ServerRecord,
        images: Arc<ImageCache>,
    ) -> anyhow::Result<RedfishDriver> {
        let bmc = self.app.server_bmc(server)?;
        let dir = self.data_dir.join("baremetal");
        std::fs::create_dir_all(&dir)?;
        Ok(RedfishDriver::new(
            bmc,
            self.app.server_log(server.uid),
            Arc::new(AppDeploy {
                app: self.app.clone(),
                server: server.uid,
                media_base: self.media_base.clone(),
            }),
            images,
            RedfishConfig {
                state_file: dir.join(format!("{}.json", server.uid)),
                raw_images: dir.join("raw-images"),
                console_log: (!self.settings.console_logs.is_empty()).then(|| {
                    Path::new(&self.settings.console_logs).join(format!("{}.log", server.id))
                }),
                ramdisk_timeout: secs(self.settings.ramdisk_timeout_s),
                shutdown_grace: secs(self.settings.shutdown_grace_s),
            },
        ))
    }

    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let control_plane: Arc<dyn ControlPlane> = Arc::new(LocalControlPlane(self.app.clone()));
        let images = Arc::new(ImageCache::new(
            self.data_dir.join("baremetal").join("image-cache"),
            control_plane.clone(),
        ));
        let _ = std::fs::create_dir_all(self.data_dir.join("baremetal").join("image-cache"));
        let busy: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
        let mut agents: HashMap<Uuid, CancellationToken> = HashMap::new();
        let mut checked: HashMap<Uuid, Instant> = HashMap::new();
        let health_every = secs(self.settings.health_check_s.max(1));
        let mut revision = 0;
        loop {
            let servers = match self.app.store.active_servers().await {
                Ok(servers) => servers,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the servers failed");
                    Vec::new()
                }
            };
            let mut keep = HashSet::new();
            for server in &servers {
                let state = ProvisioningState::parse(&server.provisioning_state);
                let uid = server.uid;
                let job = match state {
                    Some(ProvisioningState::Registered)
                        if server.health.last_check_time.is_none() =>
                    {
                        Some("inspect")
                    }
                    Some(ProvisioningState::Provisioning) => Some("provision"),
                    Some(ProvisioningState::Ready | ProvisioningState::Failed)
                        if checked
                            .get(&uid)
                            .is_none_or(|t| t.elapsed() >= health_every) =>
                    {
                        Some("health")
                    }
                    _ => None,
                };
                if let Some(job) = job
                    && busy.lock().unwrap().insert(uid)
                {
                    if job == "health" {
                        checked.insert(uid, Instant::now());
                    }
                    let (app, busy) = (self.app.clone(), busy.clone());
                    let data_dir = self.data_dir.clone();
                    tokio::spawn(async move {
                        let done = match job {
                            "inspect" => app.inspect_server_now(uid).await,
                            "provision" => match ensure_ramdisk(&app, &data_dir).await {
                                Ok(()) => app.provision_server_now(uid).await,
                                Err(reason) => app.fail_server(uid, reason).await,
                            },
                            _ => app.check_server_health(uid).await,
                        };
                        if let Err(e) = done {
                            tracing::warn!(server = %uid, job, error = %e, "server work failed");
                        }
                        busy.lock().unwrap().remove(&uid);
                    });
                }
                let runs_agent = server.host_id.is_some()
                    && matches!(
                        state,
                        Some(ProvisioningState::Ready | ProvisioningState::Failed)
                    );
                if runs_agent {
                    keep.insert(uid);
                    if let std::collections::hash_map::Entry::Vacant(slot) = agents.entry(uid) {
                        match self.start_agent(
                            server,
                            control_plane.clone(),
                            images.clone(),
                            &cancel,
                        ) {
                            Ok(token) => {
                                slot.insert(token);
                            }
                            Err(e) => {
                                tracing::error!(server = %server.id, error = %e, "starting the server's agent");
                            }
                        }
                    }
                }
            }
            agents.retain(|uid, token| {
                let kept = keep.contains(uid);
                if !kept {
                    token.cancel();
                }
                kept
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.app.server_changes.wait_past(revision, std::time::Duration::from_secs(5)) => revision = r,
            }
        }
    }

    fn start_agent(
        &self,
        server: &ServerRecord,
        control_plane: Arc<dyn ControlPlane>,
        images: Arc<ImageCache>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<CancellationToken> {
        let driver = Arc::new(self.driver(server, images)?);
        let registration = server_host_registration(server);
        let token = cancel.child_token();
        let agent = Agent::new(control_plane, driver, registration, self.agent.clone());
        tokio::spawn(agent.run(token.clone()));
        tracing::info!(server = %server.id, "bare-metal agent started");
        Ok(token)
    }
}
