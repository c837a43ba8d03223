//! The `sim` driver: a simulated hypervisor host.
//!
//! It is a first-class driver, not a mock: demos, tests and benchmarks run on it, and machines
//! without QEMU use it. It behaves like a host should. Operations take configurable time. Each
//! VM writes a synthetic but honest boot log to its serial console (it says it is simulated,
//! and shows what the guest would have read from its metadata). Each VM is written to a file
//! of its own after every change to it (`<state>.d/<uid>.json`), so VMs survive a restart of
//! the agent the way QEMU processes do, the restarted agent adopts them, and a change costs
//! the same however many VMs the host holds. Failures can be injected per instance with the
//! metadata key `stratus-sim-fail` (`boot`: every boot fails), to exercise the paths by which
//! an instance leaves a state it cannot complete. Every VM the host creates is also appended
//! to a provisioning log beside the state file (`<state>.provisions`, one instance uid per
//! line), so an operator or a test can tell that no instance was ever provisioned twice.

use crate::driver::{Driver, DriverError, VmInfo, VmState};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stratus_types::agent::VmSpec;
use tokio::sync::Mutex;
use uuid::Uuid;

/// How long the simulated operations take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SimTimings {
    /// Preparing disks (PROVISIONING).
    pub prepare_ms: u64,
    /// Starting the VM until its vCPUs run (STAGING).
    pub boot_ms: u64,
    /// Stopping the VM.
    pub stop_ms: u64,
    /// Pausing or resuming.
    pub pause_ms: u64,
}

impl Default for SimTimings {
    fn default() -> Self {
        Self {
            prepare_ms: 200,
            boot_ms: 300,
            stop_ms: 150,
            pause_ms: 50,
        }
    }
}

/// The metadata key that injects failures into the simulator.
pub const FAIL_KEY: &str = "stratus-sim-fail";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SimVm {
    spec: VmSpec,
    state: VmState,
    stop_reason: Option<String>,
    serial: String,
    boots: u32,
    #[serde(skip, default = "Instant::now")]
    started: Instant,
}

/// A simulated host, optionally persisted to `state_file`.
pub struct SimDriver {
    vms: Mutex<BTreeMap<Uuid, SimVm>>,
    state_file: Option<PathBuf>,
    timings: SimTimings,
}

impl SimDriver {
    /// A simulated host whose VMs are kept in `state_file` (loaded if it exists).
    pub fn new(state_file: Option<PathBuf>, timings: SimTimings) -> Result<Self, DriverError> {
        let driver = Self {
            vms: Mutex::new(BTreeMap::new()),
            state_file,
            timings,
        };
        let Some(dir) = driver.vm_dir() else {
            return Ok(driver);
        };
        let io = |what: &std::path::Path, e: std::io::Error| {
            DriverError::Transient(format!("reading {}: {e}", what.display()))
        };
        let mut vms: BTreeMap<Uuid, SimVm> = BTreeMap::new();
        // A host written by an older version: one file with every VM, moved to one file each.
        if let Some(whole) = driver.state_file.as_ref().filter(|p| p.exists()) {
            let text = std::fs::read_to_string(whole).map_err(|e| io(whole, e))?;
            vms = serde_json::from_str(&text)
                .map_err(|e| DriverError::Permanent(format!("parsing {}: {e}", whole.display())))?;
            for (uid, vm) in &vms {
                driver.save_vm(*uid, Some(vm))?;
            }
            std::fs::remove_file(whole).map_err(|e| io(whole, e))?;
        }
        if dir.exists() {
            for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                let path = entry.map_err(|e| io(&dir, e))?.path();
                let Some(uid) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<Uuid>().ok())
                    .filter(|_| path.extension().is_some_and(|e| e == "json"))
                else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                let vm = serde_json::from_str(&text).map_err(|e| {
                    DriverError::Permanent(format!("parsing {}: {e}", path.display()))
                })?;
                vms.insert(uid, vm);
            }
        }
        *driver.vms.try_lock().expect("a new driver's table is free") = vms;
        Ok(driver)
    }

    /// Where each VM's file is kept, when the host is persisted.
    fn vm_dir(&self) -> Option<PathBuf> {
        self.state_file.as_ref().map(|p| p.with_extension("d"))
    }

    /// Writes one VM's file (or removes it, for `None`).
    fn save_vm(&self, uid: Uuid, vm: Option<&SimVm>) -> Result<(), DriverError> {
        let Some(dir) = self.vm_dir() else {
            return Ok(());
        };
        let path = dir.join(format!("{uid}.json"));
        let failed =
            |e: std::io::Error| DriverError::Transient(format!("writing {}: {e}", path.display()));
        match vm {
            Some(vm) => {
                std::fs::create_dir_all(&dir).map_err(failed)?;
                let tmp = path.with_extension("tmp");
                let text =
                    serde_json::to_string(vm).map_err(|e| DriverError::Permanent(e.to_string()))?;
                std::fs::write(&tmp, text)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(failed)
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e)),
                _ => Ok(()),
            },
        }
    }

    /// The provisioning log of a host persisted to `state_file`.
    pub fn provisions_file(state_file: &std::path::Path) -> PathBuf {
        state_file.with_extension("provisions")
    }

    fn log_provision(&self, uid: Uuid) -> Result<(), DriverError> {
        use std::io::Write;
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let path = Self::provisions_file(path);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut log| writeln!(log, "{uid}"))
            .map_err(|e| DriverError::Transient(format!("writing {}: {e}", path.display())))
    }

    async fn pause_for(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Applies `change` to the VM of `uid` and persists the table.
    async fn with_vm<T>(
        &self,
        uid: Uuid,
        change: impl FnOnce(&mut SimVm) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        let mut vms = self.vms.lock().await;
        let vm = vms.get_mut(&uid).ok_or_else(|| {
            DriverError::NotFound(format!("no VM for instance {uid} on this host"))
        })?;
        let out = change(vm)?;
        self.save_vm(uid, Some(vm))?;
        Ok(out)
    }
}

fn boot_log(vm: &SimVm) -> String {
    let spec = &vm.spec;
    let disk_gb: u32 = spec.disks.iter().filter_map(|d| d.size_gb).sum();
    let keys = spec
        .metadata
        .iter()
        .find(|m| m.key.as_str() == "ssh-keys")
        .map(|m| m.value.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    let user_data = spec
        .metadata
        .iter()
        .find(|m| m.key.as_str() == "user-data")
        .map(|m| m.value.len());
    let mut log = format!(
        "SeaBIOS (Stratus simulated host)\r\n\
         Booting from Hard Disk...\r\n\
         [    0.000000] Linux version 6.1.0-stratus-sim (simulated guest, boot {boot})\r\n\
         [    0.000000] Command line: console=ttyS0 root=/dev/vda1\r\n\
         [    0.010000] smpboot: Allowing {vcpus} CPUs\r\n\
         [    0.020000] Memory: {mem}K available\r\n\
         [    0.400000] virtio_blk virtio1: [vda] {disk_gb} GB disk\r\n\
         [    1.000000] stratus-init: instance {id} ({uid}) in project {project}\r\n\
         [    1.010000] stratus-init: hostname {hostname}\r\n\
         [    1.020000] stratus-init: {keys} ssh keys from metadata ssh-keys\r\n",
        boot = vm.boots,
        vcpus = spec.vcpus,
        mem = spec.memory_mb * 1024,
        id = spec.id,
        uid = spec.uid,
        project = spec.project,
        hostname = spec.hostname,
    );
    if let Some(bytes) = user_data {
        log.push_str(&format!(
            "[    1.030000] stratus-init: user-data of {bytes} bytes\r\n"
        ));
    }
    log.push_str(&format!("\r\n{} login: \r\n", spec.hostname));
    log
}

#[async_trait]
impl Driver for SimDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn inspect(&self, uid: Uuid) -> Result<Option<VmInfo>, DriverError> {
        Ok(self.vms.lock().await.get(&uid).map(|vm| VmInfo {
            state: vm.state,
            stop_reason: vm.stop_reason.clone(),
        }))
    }

    async fn list(&self) -> Result<Vec<Uuid>, DriverError> {
        Ok(self.vms.lock().await.keys().copied().collect())
    }

    async fn prepare(&self, spec: &VmSpec) -> Result<(), DriverError> {
        if self.vms.lock().await.contains_key(&spec.uid) {
            return Ok(());
        }
        Self::pause_for(self.timings.prepare_ms).await;
        let mut vms = self.vms.lock().await;
        let mut created = false;
        let vm = vms.entry(spec.uid).or_insert_with(|| {
            created = true;
            SimVm {
                spec: spec.clone(),
                state: VmState::Stopped,
                stop_reason: None,
                serial: String::new(),
                boots: 0,
                started: Instant::now(),
            }
        });
        self.save_vm(spec.uid, Some(vm))?;
        if created {
            self.log_provision(spec.uid)?;
        }
        Ok(())
    }

    async fn boot(&self, uid: Uuid) -> Result<(), DriverError> {
        let failure = self
            .with_vm(uid, |vm| {
                Ok(vm
                    .spec
                    .metadata
                    .iter()
                    .find(|m| m.key.as_str() == FAIL_KEY)
                    .map(|m| m.value.clone()))
            })
            .await?;
        Self::pause_for(self.timings.boot_ms).await;
        match failure.as_deref() {
            Some("boot") => {
                return Err(DriverError::Transient(format!(
                    "simulated boot failure (metadata {FAIL_KEY}=boot)"
                )));
            }
            Some("boot-permanent") => {
                return Err(DriverError::Permanent(format!(
                    "simulated permanent boot failure (metadata {FAIL_KEY}=boot-permanent)"
                )));
            }
            _ => {}
        }
        self.with_vm(uid, |vm| {
            if vm.state == VmState::Stopped {
                vm.state = VmState::Running;
                vm.stop_reason = None;
                vm.boots += 1;
                vm.started = Instant::now();
                let log = boot_log(vm);
                vm.serial.push_str(&log);
            }
            Ok(())
        })
        .await
    }

    async fn reset(&self, uid: Uuid) -> Result<(), DriverError> {
        Self::pause_for(self.timings.boot_ms).await;
        self.with_vm(uid, |vm| {
            vm.serial
                .push_str("[   60.000000] reboot: Restarting system\r\n");
            vm.state = VmState::Running;
            vm.boots += 1;
            let log = boot_log(vm);
            vm.serial.push_str(&log);
            Ok(())
        })
        .await
    }

    async fn pause(&self, uid: Uuid) -> Result<(), DriverError> {
        Self::pause_for(self.timings.pause_ms).await;
        self.with_vm(uid, |vm| match vm.state {
            VmState::Running | VmState::Paused => {
                vm.state = VmState::Paused;
                Ok(())
            }
            VmState::Stopped => Err(DriverError::Permanent("cannot pause a stopped VM".into())),
        })
        .await
    }

    async fn resume(&self, uid: Uuid) -> Result<(), DriverError> {
        Self::pause_for(self.timings.pause_ms).await;
        self.with_vm(uid, |vm| match vm.state {
            VmState::Running | VmState::Paused => {
                vm.state = VmState::Running;
                Ok(())
            }
            VmState::Stopped => Err(DriverError::Permanent("cannot resume a stopped VM".into())),
        })
        .await
    }

    async fn power_off(&self, uid: Uuid) -> Result<Option<String>, DriverError> {
        if self.inspect(uid).await?.is_none() {
            return Ok(None);
        }
        Self::pause_for(self.timings.stop_ms).await;
        self.with_vm(uid, |vm| {
            if vm.state != VmState::Stopped {
                vm.serial.push_str("[  120.000000] reboot: Power down\r\n");
            }
            vm.state = VmState::Stopped;
            vm.stop_reason = None;
            Ok(())
        })
        .await
        .map(|()| None)
    }

    async fn destroy(&self, uid: Uuid) -> Result<(), DriverError> {
        let mut vms = self.vms.lock().await;
        if vms.remove(&uid).is_some() {
            self.save_vm(uid, None)?;
        }
        Ok(())
    }

    async fn serial_output(&self, uid: Uuid, from: u64) -> Result<(u64, Vec<u8>), DriverError> {
        let vms = self.vms.lock().await;
        let Some(vm) = vms.get(&uid) else {
            return Ok((from, Vec::new()));
        };
        let bytes = vm.serial.as_bytes();
        let start = (from as usize).min(bytes.len());
        Ok((start as u64, bytes[start..].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_types::{MetadataItem, MetadataKey};

    fn spec(metadata: Vec<MetadataItem>) -> VmSpec {
        VmSpec {
            uid: Uuid::new_v4(),
            project: "p".into(),
            id: "web-1".into(),
            hostname: "web-1".into(),
            vcpus: 2,
            memory_mb: 2048,
            gpus: 0,
            disks: vec![],
            metadata,
            nics: vec![],
        }
    }

    fn fast() -> SimTimings {
        SimTimings {
            prepare_ms: 0,
            boot_ms: 0,
            stop_ms: 0,
            pause_ms: 0,
        }
    }

    #[tokio::test]
    async fn vms_survive_a_restart_of_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sim.json");
        let s = spec(vec![]);
        {
            let sim = SimDriver::new(Some(file.clone()), fast()).unwrap();
            sim.prepare(&s).await.unwrap();
            sim.boot(s.uid).await.unwrap();
        }
        let sim = SimDriver::new(Some(file), fast()).unwrap();
        assert_eq!(
            sim.inspect(s.uid).await.unwrap().unwrap().state,
            VmState::Running
        );
        assert_eq!(sim.list().await.unwrap(), vec![s.uid]);
    }

    #[tokio::test]
    async fn a_change_writes_one_file_and_a_table_of_an_older_version_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sim.json");
        let (a, b) = (spec(vec![]), spec(vec![]));
        {
            let sim = SimDriver::new(Some(file.clone()), fast()).unwrap();
            sim.prepare(&a).await.unwrap();
            sim.prepare(&b).await.unwrap();
            sim.destroy(b.uid).await.unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(dir.path().join("sim.d"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [format!("{}.json", a.uid)]);
        // The whole table in one file, as older versions kept it.
        let vm = std::fs::read_to_string(dir.path().join(format!("sim.d/{}.json", a.uid))).unwrap();
        std::fs::remove_dir_all(dir.path().join("sim.d")).unwrap();
        std::fs::write(&file, format!("{{\"{}\": {vm}}}", a.uid)).unwrap();
        let sim = SimDriver::new(Some(file.clone()), fast()).unwrap();
        assert_eq!(sim.list().await.unwrap(), vec![a.uid]);
        assert!(!file.exists() && dir.path().join(format!("sim.d/{}.json", a.uid)).exists());
    }

    #[tokio::test]
    async fn the_boot_log_shows_what_the_guest_read() {
        let sim = SimDriver::new(None, fast()).unwrap();
        let s = spec(vec![MetadataItem {
            key: MetadataKey::parse("ssh-keys").unwrap(),
            value: "alice:ssh-ed25519 AAAA alice\nbob:ssh-ed25519 BBBB bob\n".into(),
        }]);
        sim.prepare(&s).await.unwrap();
        sim.boot(s.uid).await.unwrap();
        let (start, log) = sim.serial_output(s.uid, 0).await.unwrap();
        let log = String::from_utf8(log).unwrap();
        assert_eq!(start, 0);
        assert!(log.contains("2 ssh keys"), "{log}");
        assert!(log.contains("web-1 login:"), "{log}");
        let (start, rest) = sim.serial_output(s.uid, 10).await.unwrap();
        assert_eq!((start, rest.len()), (10, log.len() - 10));
    }

    #[tokio::test]
    async fn injected_boot_failures_fail_every_boot() {
        let sim = SimDriver::new(None, fast()).unwrap();
        let s = spec(vec![MetadataItem {
            key: MetadataKey::parse(FAIL_KEY).unwrap(),
            value: "boot".into(),
        }]);
        sim.prepare(&s).await.unwrap();
        assert!(sim.boot(s.uid).await.is_err());
        assert_eq!(
            sim.inspect(s.uid).await.unwrap().unwrap().state,
            VmState::Stopped
        );
        sim.destroy(s.uid).await.unwrap();
        assert!(sim.inspect(s.uid).await.unwrap().is_none());
    }
}
