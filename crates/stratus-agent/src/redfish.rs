//! The `redfish` driver: one bare-metal server as a host of one instance.
//!
//! # Where it runs, and why there
//!
//! A hypervisor driver runs on its host because the host is where QEMU is. A bare-metal
//! server has nothing of Stratus on it: everything is done to it from outside, through its
//! BMC. So this driver runs in the control plane's process, one per ready server, under the
//! same agent loop as the in-process hypervisor host — the loop that turns an instance's
//! intent into steps and reports what it reached. That keeps three things in one place:
//!
//! - the BMC credentials, which never leave the control plane (they are opened from the
//!   database only in the process that holds the data directory's key),
//! - the image and the deploy ramdisk, which the control plane already serves, and
//! - the one-time deploy tokens, checked by the same process that issued them.
//!
//! Ironic's conductor sits in the same place for the same reasons. The price is that the
//! control plane must reach the BMCs (a management network), and the servers being deployed
//! must reach the control plane (a provisioning network, or the BMC's virtual media path).
//!
//! # What the lifecycle means on a server
//!
//! - `prepare` (PROVISIONING) is the deploy, the way Ironic's virtual-media deploy does it:
//!   power off, insert the deploy ramdisk ISO as virtual media, boot once from CD, let the
//!   ramdisk fetch the instance's image with its one-time token and write it to the disk, wait
//!   for its report, then power off, eject, and make the disk the boot device.
//! - `boot` (STAGING → RUNNING) inserts the instance's NoCloud seed (an ISO labelled `cidata`
//!   with its meta-data and user-data) as virtual media and powers on; the installed OS reads
//!   its hostname and ssh-keys from it on first boot.
//! - `power_off`, `reset` are `GracefulShutdown` (then `ForceOff` if ignored) and
//!   `ForceRestart`; a server cannot pause, so suspend is refused before it gets here.
//! - `destroy` powers off and boots the ramdisk once more to wipe the disk's partition tables
//!   and its first and last MiB, then ejects everything. When that cannot be done (the BMC
//!   stopped answering), the instance is still deleted — it must never be stuck — but the
//!   server is marked `failed` with the reason, so nothing is placed on a disk that was not
//!   cleaned until an operator provisions it again.
//!
//! Which instance is on the server, and whether its image was written, is kept in a small
//! file in the data directory, so a restarted control plane neither redeploys a running server
//! nor boots a half-written disk.

use crate::driver::{Driver, DriverError, ImageSource, VmInfo, VmState};
use crate::metadata::GuestMetadata;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratus_redfish::{Bmc, BmcError, BmcLog, BootTarget, Reset, Severity};
use stratus_types::agent::VmSpec;
use tokio::sync::watch;
use uuid::Uuid;

/// What the deploy ramdisk is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RamdiskJob {
    /// Write this raw image to the disk.
    Deploy { image: PathBuf },
    /// Wipe the disk's partition tables and first and last MiBs.
    Clean,
}

/// An open deploy session.
pub struct RamdiskSession {
    /// The URL the BMC downloads the ramdisk ISO from (it carries the session's token).
    pub media_url: String,
    /// Closes the session.
    pub token: String,
    /// The ramdisk's report once it arrives: `Ok` or the reason it failed.
    pub outcome: watch::Receiver<Option<Result<(), String>>>,
}

/// What the control plane does for a deploy: sessions for the ramdisk, seeds for the OS,
/// and being told when a server needs an operator.
#[async_trait]
pub trait DeployService: Send + Sync + 'static {
    fn open(&self, instance: Uuid, job: RamdiskJob) -> RamdiskSession;
    fn close(&self, token: &str);
    /// Publishes the instance's seed ISO; returns the URL the BMC downloads it from.
    fn publish_seed(&self, instance: Uuid, iso: Vec<u8>) -> String;
    fn withdraw_seed(&self, instance: Uuid);
    /// The server cannot be trusted with another instance until an operator acts.
    /// Returns once the server takes no new instance.
    async fn server_failed(&self, reason: String);
    /// The server's power changed: its shown power state should be read again.
    fn power_changed(&self);
}

/// Settings of one server's driver.
#[derive(Clone, Debug)]
pub struct RedfishConfig {
    /// Where the driver keeps which instance is on the server.
    pub state_file: PathBuf,
    /// Where raw copies of qcow2 images are kept for deploys.
    pub raw_images: PathBuf,
    /// The server's serial console log, when something (an emulator, a console server)
    /// writes one.
    pub console_log: Option<PathBuf>,
    /// Longest wait for the deploy ramdisk's report.
    pub ramdisk_timeout: Duration,
    /// How long the OS gets to shut down before the power is cut.
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ServerState {
    /// The instance on the server.
    instance: Option<Uuid>,
    /// Whether its image is on the disk.
    deployed: bool,
    /// Where the instance's console starts in the console log.
    console_base: u64,
    /// A removed instance's disk could not be cleaned: the next deploy cleans it first.
    #[serde(default)]
    dirty: bool,
}

/// The driver of one bare-metal server.
pub struct RedfishDriver {
    bmc: Bmc,
    log: Arc<dyn BmcLog>,
    deploy: Arc<dyn DeployService>,
    images: Arc<dyn ImageSource>,
    config: RedfishConfig,
    state: Mutex<ServerState>,
    specs: Mutex<HashMap<Uuid, VmSpec>>,
    /// One BMC conversation at a time: steps of one server never interleave.
    busy: tokio::sync::Mutex<()>,
}

fn bmc_error(e: BmcError) -> DriverError {
    if e.is_transient() {
        DriverError::Transient(e.to_string())
    } else {
        DriverError::Permanent(e.to_string())
    }
}

impl RedfishDriver {
    pub fn new(
        bmc: Bmc,
        log: Arc<dyn BmcLog>,
        deploy: Arc<dyn DeployService>,
        images: Arc<dyn ImageSource>,
        config: RedfishConfig,
    ) -> Self {
        let state = std::fs::read(&config.state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            bmc,
            log,
            deploy,
            images,
            config,
            state: Mutex::new(state),
            specs: Mutex::new(HashMap::new()),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> ServerState {
        self.state.lock().unwrap().clone()
    }

    fn save(&self, state: ServerState) -> Result<(), DriverError> {
        let tmp = self.config.state_file.with_extension("tmp");
        let bytes = serde_json::to_vec(&state).expect("state serializes");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.config.state_file))
            .map_err(|e| {
                DriverError::Transient(format!("saving {}: {e}", self.config.state_file.display()))
            })?;
        *self.state.lock().unwrap() = state;
        Ok(())
    }

    fn note(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(bmc = %self.bmc.address().origin, "{message}");
        self.log.record(Severity::Info, message);
    }

    fn console_len(&self) -> u64 {
        self.config
            .console_log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Powers off, ignoring a refusal because it is off already.
    async fn force_off(&self) -> Result<(), DriverError> {
        match self.bmc.reset(Reset::ForceOff).await {
            Ok(()) => Ok(()),
            Err(BmcError::Refused { status, .. }) if status < 500 => Ok(()),
            Err(e) => Err(bmc_error(e)),
        }
    }

    async fn wait_for_power(&self, want: &str, within: Duration) -> Result<bool, DriverError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.bmc.quiet().power_state().await.map_err(bmc_error)? == want {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Boots the deploy ramdisk for `job` and waits for its report; the server ends powered
    /// off with no media inserted and the disk as its boot device.
    async fn run_ramdisk(&self, instance: Uuid, job: RamdiskJob) -> Result<(), DriverError> {
        let what = match &job {
            RamdiskJob::Deploy { .. } => "deploy",
            RamdiskJob::Clean => "cleaning",
        };
        let mut session = self.deploy.open(instance, job);
        let ran = async {
            self.force_off().await?;
            self.note(format!("{what}: inserting the deploy ramdisk"));
            self.bmc
                .insert_media(&session.media_url, "the deploy ramdisk")
                .await
                .map_err(bmc_error)?;
            self.bmc
                .set_boot(BootTarget::Cd, true)
                .await
                .map_err(bmc_error)?;
            self.bmc.reset(Reset::On).await.map_err(bmc_error)?;
            self.note(format!("{what}: powered on from the deploy ramdisk"));
            let deadline = tokio::time::Instant::now() + self.config.ramdisk_timeout;
            let mut unanswered = 0;
            loop {
                if let Some(outcome) = session.outcome.borrow_and_update().clone() {
                    return outcome.map_err(|reason| {
                        DriverError::Permanent(format!("the deploy ramdisk failed: {reason}"))
                    });
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(DriverError::Transient(format!(
                        "the deploy ramdisk did not report within {} s",
                        self.config.ramdisk_timeout.as_secs()
                    )));
                }
                let wait = tokio::time::timeout(Duration::from_secs(10), session.outcome.changed());
                match wait.await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => {
                        return Err(DriverError::Transient(format!(
                            "the {what} session ended before the deploy ramdisk reported"
                        )));
                    }
                    Err(_) => {}
                }
                // No report for a while: is the server still on, and its BMC still there?
                match self.bmc.quiet().power_state().await {
                    Ok(power) if power == "Off" => {
                        return Err(DriverError::Permanent(format!(
                            "the server powered off before the deploy ramdisk reported ({what})"
                        )));
                    }
                    Ok(_) => unanswered = 0,
                    Err(e) if e.is_transient() && unanswered < 3 => unanswered += 1,
                    Err(e) => {
                        return Err(DriverError::Transient(format!(
                            "the BMC stopped answering during the {what}: {e}"
                        )));
                    }
                }
            }
        }
        .await;
        self.deploy.close(&session.token);
        // Whatever happened, leave the server off, empty and booting from its disk.
        let tidy = async {
            self.force_off().await?;
            self.bmc.eject_media().await.map_err(bmc_error)?;
            self.bmc
                .set_boot(BootTarget::Hdd, false)
                .await
                .map_err(bmc_error)
        }
        .await;
        match (&ran, &tidy) {
            (Ok(()), Ok(())) => self.note(format!("{what}: done; media ejected, boot from disk")),
            (Err(e), _) => self
                .log
                .record(Severity::Error, format!("{what} failed: {e}")),
            (Ok(()), Err(e)) => self
                .log
                .record(Severity::Error, format!("{what}: tidying up failed: {e}")),
        }
        ran.and(tidy)
    }

    /// The raw image file of the boot disk of `spec`.
    async fn raw_image(&self, spec: &VmSpec) -> Result<PathBuf, DriverError> {
        let source = spec
            .disks
            .iter()
            .find(|d| d.boot)
            .or_else(|| spec.disks.first())
            .and_then(|d| d.source.as_deref())
            .ok_or_else(|| {
                DriverError::Permanent(
                    "a bare-metal instance needs a boot disk from an image".into(),
                )
            })?;
        let id = source.rsplit('/').next().unwrap_or_default();
        let image = self.images.image_file(id).await?;
        if image.format == "raw" {
            return Ok(image.path);
        }
        std::fs::create_dir_all(&self.config.raw_images).map_err(|e| {
            DriverError::Transient(format!("{}: {e}", self.config.raw_images.display()))
        })?;
        let stamp = std::fs::metadata(&image.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let raw = self.config.raw_images.join(format!("{id}-{stamp}.raw"));
        if !raw.exists() {
            let tmp = raw.with_extension("tmp");
            let mut command = tokio::process::Command::new("qemu-img");
            command
                .args(["convert", "-O", "raw", "-f", &image.format])
                .arg(&image.path)
                .arg(&tmp);
            crate::qemu::run(command, "qemu-img convert").await?;
            std::fs::rename(&tmp, &raw)
                .map_err(|e| DriverError::Transient(format!("{}: {e}", raw.display())))?;
        }
        Ok(raw)
    }

    /// The NoCloud seed of `spec` as an ISO labelled `cidata`, made beside the state file
    /// (the user-data it holds stays inside the private data directory).
    async fn seed_iso(&self, spec: &VmSpec) -> Result<Vec<u8>, DriverError> {
        let metadata = GuestMetadata::from(spec);
        let dir = self.config.state_file.with_extension("seed");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DriverError::Transient(format!("{}: {e}", dir.display())))?;
        let files = [
            ("meta-data", metadata.nocloud_meta_data()),
            ("user-data", metadata.nocloud_user_data()),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text)
                .map_err(|e| DriverError::Transient(format!("writing the seed: {e}")))?;
        }
        let iso = dir.join("seed.iso");
        let mut command = tokio::process::Command::new("xorriso");
        command
            .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-r", "-o"])
            .arg(&iso)
            .arg(dir.join("meta-data"))
            .arg(dir.join("user-data"));
        let made = crate::qemu::run(command, "xorriso (the NoCloud seed)").await;
        let bytes = made.and_then(|()| {
            std::fs::read(&iso).map_err(|e| DriverError::Transient(format!("the seed: {e}")))
        });
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }
}

#[async_trait]
impl Driver for RedfishDriver {
    fn name(&self) -> &'static str {
        "redfish"
    }

    async fn inspect(&self, uid: Uuid) -> Result<Option<VmInfo>, DriverError> {
        let state = self.state();
        if state.instance != Some(uid) || !state.deployed {
            return Ok(None);
        }
        let power = self.bmc.quiet().power_state().await.map_err(bmc_error)?;
        Ok(Some(VmInfo {
            state: if power == "On" {
                VmState::Running
            } else {
                VmState::Stopped
            },
            stop_reason: None,
        }))
    }

    async fn list(&self) -> Result<Vec<Uuid>, DriverError> {
        Ok(self.state().instance.into_iter().collect())
    }

    async fn prepare(&self, spec: &VmSpec) -> Result<(), DriverError> {
        let _busy = self.busy.lock().await;
        self.specs.lock().unwrap().insert(spec.uid, spec.clone());
        let state = self.state();
        if state.instance == Some(spec.uid) && state.deployed {
            return Ok(());
        }
        if let Some(other) = state.instance.filter(|i| *i != spec.uid) {
            return Err(DriverError::Permanent(format!(
                "the server still holds instance {other}"
            )));
        }
        let image = self.raw_image(spec).await?;
        if state.dirty {
            self.note("cleaning the disk a removed instance left before deploying");
            self.run_ramdisk(spec.uid, RamdiskJob::Clean).await?;
        }
        self.save(ServerState {
            instance: Some(spec.uid),
            deployed: false,
            console_base: self.console_len(),
            dirty: false,
        })?;
        self.note(format!("deploying instance {} ({})", spec.id, spec.uid));
        self.run_ramdisk(spec.uid, RamdiskJob::Deploy { image })
            .await?;
        let mut state = self.state();
        state.deployed = true;
        self.save(state)
    }

    async fn boot(&self, uid: Uuid) -> Result<(), DriverError> {
        let _busy = self.busy.lock().await;
        let spec = self.specs.lock().unwrap().get(&uid).cloned();
        if let Some(spec) = spec {
            let seed = self.seed_iso(&spec).await?;
            let url = self.deploy.publish_seed(uid, seed);
            self.bmc
                .insert_media(&url, "the instance's NoCloud seed")
                .await
                .map_err(bmc_error)?;
        }
        self.bmc
            .set_boot(BootTarget::Hdd, false)
            .await
            .map_err(bmc_error)?;
        self.bmc.reset(Reset::On).await.map_err(bmc_error)?;
        self.note("powered on from disk");
        self.deploy.power_changed();
        Ok(())
    }

    async fn reset(&self, _uid: Uuid) -> Result<(), DriverError> {
        self.bmc.reset(Reset::ForceRestart).await.map_err(bmc_error)
    }

    async fn pause(&self, _uid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::Permanent(
            "a bare-metal server cannot be suspended".into(),
        ))
    }

    async fn resume(&self, _uid: Uuid) -> Result<(), DriverError> {
        Err(DriverError::Permanent(
            "a bare-metal server cannot be suspended".into(),
        ))
    }

    async fn power_off(&self, _uid: Uuid) -> Result<Option<String>, DriverError> {
        let _busy = self.busy.lock().await;
        if self.bmc.power_state().await.map_err(bmc_error)? == "Off" {
            return Ok(None);
        }
        match self.bmc.reset(Reset::GracefulShutdown).await {
            Ok(()) => {
                if self
                    .wait_for_power("Off", self.config.shutdown_grace)
                    .await?
                {
                    self.note("shut down");
                    return Ok(None);
                }
            }
            Err(e) if e.is_transient() => return Err(bmc_error(e)),
            Err(_) => {}
        }
        self.force_off().await?;
        self.note("the OS did not shut down; powered off hard");
        self.deploy.power_changed();
        Ok(Some(
            "the OS did not shut down in time; the server was powered off hard".into(),
        ))
    }

    async fn destroy(&self, uid: Uuid) -> Result<(), DriverError> {
        let _busy = self.busy.lock().await;
        let state = self.state();
        if state.instance != Some(uid) {
            return Ok(());
        }
        self.deploy.withdraw_seed(uid);
        self.note(format!("removing instance {uid}: cleaning the disk"));
        let dirty = match self.run_ramdisk(uid, RamdiskJob::Clean).await {
            Ok(()) => false,
            Err(e) => {
                let reason = format!("the disk of instance {uid} was not cleaned: {e}");
                self.log.record(Severity::Error, reason.clone());
                // Kept off placement before the instance is gone, and cleaned before the
                // next deploy.
                self.deploy.server_failed(reason).await;
                true
            }
        };
        self.specs.lock().unwrap().remove(&uid);
        self.deploy.power_changed();
        self.save(ServerState {
            dirty,
            ..ServerState::default()
        })
    }

    async fn serial_output(&self, uid: Uuid, from: u64) -> Result<(u64, Vec<u8>), DriverError> {
        let state = self.state();
        let Some(path) = &self.config.console_log else {
            return Ok((from, Vec::new()));
        };
        if state.instance != Some(uid) {
            return Ok((from, Vec::new()));
        }
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return Ok((from, Vec::new()));
        };
        let at = state.console_base + from;
        file.seek(SeekFrom::Start(at))
            .map_err(|e| DriverError::Transient(format!("{}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        file.take(256 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| DriverError::Transient(format!("{}: {e}", path.display())))?;
        Ok((from, bytes))
    }
}
