//! The `qemu` driver: one `qemu-system-x86_64` process per instance.
//!
//! Everything about a VM lives in its own directory, named by the instance uid: the spec it
//! was prepared from, its disks (qcow2 overlays on the image for disks with a source, blank
//! qcow2 otherwise), the serial log, the QMP socket, QEMU's pid file, the metadata socket.
//! The directory *is* the VM's record on the host, so an agent that restarts finds every VM
//! again and adopts running QEMU processes without asking anyone: the pid file plus the uid
//! on QEMU's command line identify the process, the QMP socket controls it.
//!
//! QEMU runs under a small `sh` supervisor in its own process group, so it outlives the agent
//! and its exit code is written to `exit-code` when it ends. A VM that stopped without the
//! agent asking (no `stopped-by-agent` marker) stopped by itself: exit code 0 means the guest
//! powered off, anything else is a crash, and the instance shows which.
//!
//! The accelerator is KVM only when a probe proves that KVM actually runs guest code here (on
//! some machines `/dev/kvm` opens but guests hang); TCG otherwise. Configuration can force either.

pub mod network;
mod qmp;

use crate::driver::{Driver, DriverError, ImageSource, VmInfo, VmState};
use crate::metadata::{self, GuestMetadata};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use stratus_types::agent::{OverlayPeer, VmSpec};
use stratus_types::{DiskInterface, DiskMode, DiskType};
use tokio::process::Command;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

/// Hardware acceleration of guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Settings of the QEMU driver.
#[derive(Clone)]
pub struct QemuConfig {
    /// Where VM directories live.
    pub vm_dir: PathBuf,
    /// The QEMU system emulator.
    pub binary: String,
    /// `None` probes KVM and falls back to TCG.
    pub accel: Option<Accel>,
    /// Where image files come from.
    pub images: Arc<dyn ImageSource>,
    /// Program and arguments that connect stdin/stdout to a unix socket given as the last
    /// argument (`stratus metadata-proxy`); QEMU runs it for each guest connection to the
    /// metadata address.
    pub metadata_proxy: Vec<String>,
    /// How long a guest gets to power off after an ACPI request before it is stopped hard.
    pub shutdown_grace: Duration,
    /// How guests' NICs are connected.
    pub networking: Networking,
}

/// How guests' NICs are connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Networking {
    /// QEMU's user-mode network, restricted to the metadata address: one NIC, reachable by
    /// nothing.
    #[default]
    User,
    /// Each NIC a tap on its network's bridge ([`network`]).
    Bridge(network::BridgeSettings),
}

struct MetadataServer {
    doc: watch::Sender<GuestMetadata>,
    task: tokio::task::JoinHandle<()>,
}

/// The QEMU driver.
pub struct QemuDriver {
    config: QemuConfig,
    accel: Accel,
    metadata: Mutex<HashMap<Uuid, MetadataServer>>,
    /// The data plane, with bridge networking.
    plane: Option<network::NetworkPlane>,
    /// VMs whose NICs this process has plumbed (or repaired after a restart).
    plumbed: Mutex<std::collections::HashSet<Uuid>>,
}

const SPEC: &str = "spec.json";
const PID: &str = "qemu.pid";
const QMP: &str = "qmp.sock";
const SERIAL: &str = "serial.log";
const EXIT_CODE: &str = "exit-code";
const STOPPED_BY_AGENT: &str = "stopped-by-agent";
const METADATA_SOCKET: &str = "metadata.sock";
const METADATA_PROXY: &str = "metadata-proxy";
const SEED: &str = "seed.img";
/// Largest slice of serial output returned at once.
const SERIAL_CHUNK: u64 = 256 * 1024;

fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> DriverError {
    move |e| DriverError::Transient(format!("{context}: {e}"))
}

impl QemuDriver {
    /// A driver keeping its VMs under `config.vm_dir`; probes the accelerator when not forced.
    pub async fn new(mut config: QemuConfig) -> Result<Self, DriverError> {
        std::fs::create_dir_all(&config.vm_dir).map_err(io(config.vm_dir.display()))?;
        // QEMU runs inside each VM's directory: every path handed to it must be absolute.
        config.vm_dir =
            std::fs::canonicalize(&config.vm_dir).map_err(io(config.vm_dir.display()))?;
        let accel = match config.accel {
            Some(accel) => accel,
            None => probe_accel(&config.binary, &config.vm_dir).await,
        };
        let plane = match &config.networking {
            Networking::User => None,
            Networking::Bridge(settings) => {
                let vm_dir = config.vm_dir.clone();
                let socket: network::MetadataSocket =
                    Arc::new(move |uid: Uuid| vm_dir.join(uid.to_string()).join(METADATA_SOCKET));
                Some(network::NetworkPlane::new(
                    config.vm_dir.with_file_name("network"),
                    settings.clone(),
                    socket,
                )?)
            }
        };
        tracing::info!(accel = accel.as_str(), networking = ?config.networking, "QEMU driver ready");
        Ok(Self {
            config,
            accel,
            metadata: Mutex::new(HashMap::new()),
            plane,
            plumbed: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Plumbs `spec`'s NICs (with bridge networking); idempotent. Only `prepare` plumbs a VM
    /// the plane has removed (`revive`): a poll that still lists a VM being destroyed must
    /// not bring its network back.
    async fn plumb(&self, spec: &VmSpec, revive: bool) -> Result<(), DriverError> {
        if let Some(plane) = &self.plane
            && !spec.nics.is_empty()
        {
            plane.ensure(spec, revive).await?;
            self.plumbed.lock().await.insert(spec.uid);
        }
        Ok(())
    }

    /// What the guest of `spec` reads from its metadata service and seed: with bridged
    /// networking its NICs' MACs too (they are the MACs it sees), for its `network-config`.
    fn guest_metadata(&self, spec: &VmSpec) -> GuestMetadata {
        let mut doc = GuestMetadata::from(spec);
        if self.plane.is_some() {
            doc.macs = spec.nics.iter().map(|n| n.mac.clone()).collect();
        }
        doc
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    fn dir(&self, uid: Uuid) -> PathBuf {
        self.config.vm_dir.join(uid.to_string())
    }

    fn spec(&self, uid: Uuid) -> Result<Option<VmSpec>, DriverError> {
        let path = self.dir(uid).join(SPEC);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| DriverError::Permanent(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path.display())(e)),
        }
    }

    /// The pid of the VM's QEMU when it is running.
    fn live_pid(&self, uid: Uuid) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir(uid).join(PID))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let needle = uid.to_string();
        let is_ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes());
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        (is_ours && !zombie).then_some(pid)
    }

    async fn qmp(&self, uid: Uuid, command: &str) -> Result<serde_json::Value, DriverError> {
        qmp::execute(&self.dir(uid).join(QMP), command, None).await
    }

    /// Creates the disks that do not exist yet.
    async fn ensure_disks(&self, spec: &VmSpec) -> Result<(), DriverError> {
        let dir = self.dir(spec.uid);
        for (i, disk) in spec.disks.iter().enumerate() {
            let path = dir.join(format!("disk-{i}.qcow2"));
            if path.exists() {
                continue;
            }
            let size = format!("{}G", disk.size_gb.unwrap_or(1));
            let mut command = Command::new("qemu-img");
            command.args(["create", "-q", "-f", "qcow2"]);
            if let Some(source) = &disk.source {
                let image_id = source.rsplit('/').next().unwrap_or_default();
                let image = self.config.images.image_file(image_id).await?;
                let backing =
                    std::fs::canonicalize(&image.path).map_err(io(image.path.display()))?;
                command.arg("-F").arg(&image.format).arg("-b").arg(backing);
            }
            let tmp = dir.join(format!("disk-{i}.qcow2.tmp"));
            command.arg(&tmp).arg(&size);
            run(command, "qemu-img create").await?;
            std::fs::rename(&tmp, &path).map_err(io(path.display()))?;
        }
        Ok(())
    }

    fn qemu_args(&self, spec: &VmSpec) -> Vec<String> {
        let dir = self.dir(spec.uid);
        let path = |name: &str| dir.join(name).display().to_string();
        let mut args: Vec<String> = vec![
            "-name".into(),
            format!("stratus-{}", spec.id),
            "-uuid".into(),
            spec.uid.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-machine".into(),
            "pc".into(),
            "-accel".into(),
            self.accel.as_str().into(),
            "-smp".into(),
            spec.vcpus.max(1).to_string(),
            "-m".into(),
            spec.memory_mb.max(64).to_string(),
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            format!("file,id=serial0,path={},append=on", path(SERIAL)),
            "-serial".into(),
            "chardev:serial0".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(QMP)),
            "-pidfile".into(),
            path(PID),
            "-smbios".into(),
            "type=1,serial=ds=nocloud-net;s=http://169.254.169.254/nocloud/".into(),
        ];
        if self.plane.is_some() && !spec.nics.is_empty() {
            for (i, nic) in spec.nics.iter().enumerate() {
                args.push("-netdev".into());
                args.push(format!(
                    "tap,id=net{i},ifname={},script=no,downscript=no",
                    network::tap_name(spec.uid, i)
                ));
                args.push("-device".into());
                args.push(format!(
                    "virtio-net-pci,netdev=net{i},mac={},romfile=",
                    nic.mac
                ));
            }
        } else {
            args.push("-netdev".into());
            args.push(format!(
                // restrict=on: the guest reaches the metadata forward and nothing else, neither
                // the host (whose loopback user-mode networking would otherwise expose) nor the
                // outside.
                "user,id=net0,restrict=on,net=169.254.169.0/24,host=169.254.169.2,guestfwd=tcp:169.254.169.254:80-cmd:{}",
                path(METADATA_PROXY)
            ));
            args.push("-device".into());
            args.push("virtio-net-pci,netdev=net0,romfile=".into());
        }
        let mut scsi = false;
        // The boot disk first, so the firmware and the guest see it before any other; the
        // NoCloud seed last, so it never takes a name a stock image's boot line expects.
        let mut order: Vec<usize> = (0..spec.disks.len()).collect();
        order.sort_by_key(|&i| !spec.disks[i].boot);
        for i in order {
            let disk = &spec.disks[i];
            let read_only = if disk.mode == DiskMode::ReadOnly {
                ",readonly=on"
            } else {
                ""
            };
            args.push("-drive".into());
            args.push(format!(
                "file={},if=none,id=disk{i},format=qcow2{read_only}",
                path(&format!("disk-{i}.qcow2"))
            ));
            let boot = if disk.boot { ",bootindex=0" } else { "" };
            args.push("-device".into());
            match disk.interface.unwrap_or(DiskInterface::Scsi) {
                DiskInterface::Nvme => {
                    args.push(format!("nvme,drive=disk{i},serial=disk{i}{boot}"));
                }
                DiskInterface::Scsi => {
                    if !scsi {
                        args.push("virtio-scsi-pci,id=scsi0".into());
                        args.push("-device".into());
                        scsi = true;
                    }
                    args.push(format!("scsi-hd,drive=disk{i},bus=scsi0.0{boot}"));
                }
            }
        }
        // The NoCloud seed, for guests that read their configuration from a disk.
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=cidata,format=raw,readonly=on",
            path(SEED)
        ));
        args.push("-device".into());
        args.push("virtio-blk-pci,drive=cidata".into());
        args
    }

    /// Starts (or restarts) the metadata listener of a VM, or updates what it serves.
    async fn serve_metadata(&self, spec: &VmSpec) -> Result<(), DriverError> {
        let doc = self.guest_metadata(spec);
        let mut servers = self.metadata.lock().await;
        if let Some(server) = servers.get(&spec.uid)
            && !server.task.is_finished()
        {
            server.doc.send_if_modified(|current| {
                let changed = *current != doc;
                *current = doc;
                changed
            });
            return Ok(());
        }
        let socket = self.dir(spec.uid).join(METADATA_SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).map_err(io(socket.display()))?;
        let (sender, receiver) = watch::channel(doc);
        let router = metadata::router(receiver);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "a metadata listener failed");
            }
        });
        servers.insert(spec.uid, MetadataServer { doc: sender, task });
        Ok(())
    }

    async fn stop_metadata(&self, uid: Uuid) {
        if let Some(server) = self.metadata.lock().await.remove(&uid) {
            server.task.abort();
        }
    }

    fn write_proxy_script(&self, uid: Uuid) -> Result<(), DriverError> {
        let dir = self.dir(uid);
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line: Vec<String> = self
            .config
            .metadata_proxy
            .iter()
            .map(|a| quote(a))
            .collect();
        line.push(quote(&dir.join(METADATA_SOCKET).display().to_string()));
        let script = format!("#!/bin/sh\nexec {}\n", line.join(" "));
        let path = dir.join(METADATA_PROXY);
        std::fs::write(&path, script).map_err(io(path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io(path.display()))
    }

    /// Waits until QEMU answers on QMP, or reports why it did not start.
    async fn wait_started(&self, uid: Uuid) -> Result<(), DriverError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.live_pid(uid).is_some() && self.qmp(uid, "query-status").await.is_ok() {
                return Ok(());
            }
            if let Ok(code) = std::fs::read_to_string(self.dir(uid).join(EXIT_CODE)) {
                let log =
                    std::fs::read_to_string(self.dir(uid).join("qemu.log")).unwrap_or_default();
                return Err(DriverError::Permanent(format!(
                    "QEMU exited with code {} at start: {}",
                    code.trim(),
                    log.lines().last().unwrap_or("")
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(DriverError::Transient(
                    "QEMU did not start within 20 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_exit(&self, uid: Uuid, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.live_pid(uid).is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.live_pid(uid).is_none()
    }

    /// Stops the VM's QEMU: politely for `grace`, then by QMP `quit`, then by SIGKILL. Says
    /// so when a guest given a grace ignored the power-off request and had to be stopped hard.
    async fn stop_process(
        &self,
        uid: Uuid,
        grace: Duration,
    ) -> Result<Option<String>, DriverError> {
        let Some(pid) = self.live_pid(uid) else {
            return Ok(None);
        };
        let marker = self.dir(uid).join(STOPPED_BY_AGENT);
        std::fs::write(&marker, b"").map_err(io(marker.display()))?;
        if !grace.is_zero()
            && self.qmp(uid, "system_powerdown").await.is_ok()
            && self.wait_exit(uid, grace).await
        {
            return Ok(None);
        }
        let hard = (!grace.is_zero()).then(|| {
            format!(
                "the guest did not power off within {} s of the ACPI request and was stopped hard",
                grace.as_secs()
            )
        });
        let _ = self.qmp(uid, "quit").await;
        if self.wait_exit(uid, Duration::from_secs(5)).await {
            return Ok(hard);
        }
        let _ = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .await;
        if self.wait_exit(uid, Duration::from_secs(5)).await {
            Ok(hard)
        } else {
            Err(DriverError::Transient(format!(
                "QEMU process {pid} does not exit"
            )))
        }
    }
}

pub(crate) async fn run(mut command: Command, what: &str) -> Result<(), DriverError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::Transient(format!("{what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        // The tool ran and refused: the same inputs would be refused again.
        Err(DriverError::Permanent(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A boot sector that enters 32-bit protected mode without paging, executes an `iret` there
/// (where KVM without unrestricted-guest support fails, as it does under some nested
/// virtualization), then writes 0x31 to QEMU's debug-exit port, making QEMU exit with code 99.
const KVM_PROBE_CODE: [u8; 0x38] = [
    0xFA, // cli
    0x31, 0xC0, 0x8E, 0xD8, // xor ax,ax; mov ds,ax
    0x0F, 0x01, 0x16, 0x50, 0x7C, // lgdt [0x7c50]
    0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0, // cr0.pe = 1
    0x66, 0xEA, 0x1A, 0x7C, 0x00, 0x00, 0x08, 0x00, // jmp dword 0x08:0x7c1a
    0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0, // data segments = 0x10
    0xBC, 0x00, 0x70, 0x00, 0x00, // mov esp, 0x7000
    0x9C, 0x0E, 0x68, 0x31, 0x7C, 0x00, 0x00, 0xCF, // pushfd; push cs; push 0x7c31; iretd
    0xB0, 0x31, 0xE6, 0xF4, // mov al, 0x31; out 0xf4, al
    0xF4, 0xEB, 0xFD, // hlt; jmp $-1
];

/// The probe disk: the code, a flat GDT (null, code, data) and its descriptor, the boot
/// signature, padded to 1 MiB (SeaBIOS does not boot smaller virtio disks).
fn kvm_probe_disk() -> Vec<u8> {
    let mut disk = vec![0u8; 1 << 20];
    disk[..KVM_PROBE_CODE.len()].copy_from_slice(&KVM_PROBE_CODE);
    let gdt: [u8; 24] = [
        0, 0, 0, 0, 0, 0, 0, 0, // null
        0xFF, 0xFF, 0, 0, 0, 0x9A, 0xCF, 0, // code: base 0, limit 4 GiB, 32-bit
        0xFF, 0xFF, 0, 0, 0, 0x92, 0xCF, 0, // data
    ];
    disk[0x38..0x50].copy_from_slice(&gdt);
    disk[0x50..0x56].copy_from_slice(&[0x17, 0x00, 0x38, 0x7C, 0x00, 0x00]);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

/// Whether KVM really runs guest code here: boots [`kvm_probe_disk`] under KVM. Exit code 99
/// means it works; a hang, a "KVM internal error" or anything else means TCG. The answer is
/// kept for the life of the process.
pub async fn probe_accel(binary: &str, scratch: &Path) -> Accel {
    static PROBED: std::sync::Mutex<Vec<(String, Accel)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, accel)) = PROBED.lock().unwrap().iter().find(|(b, _)| b == binary) {
        return *accel;
    }
    let accel = probe_uncached(binary, scratch).await;
    PROBED.lock().unwrap().push((binary.to_owned(), accel));
    accel
}

async fn probe_uncached(binary: &str, scratch: &Path) -> Accel {
    use tokio::io::AsyncBufReadExt;
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let image = scratch.join(format!("kvm-probe-{}.img", Uuid::new_v4()));
    if std::fs::write(&image, kvm_probe_disk()).is_err() {
        return Accel::Tcg;
    }
    let mut command = Command::new(binary);
    command
        .args([
            "-accel",
            "kvm",
            "-m",
            "64",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
        ])
        .arg("-drive")
        .arg(format!("format=raw,file={},if=virtio", image.display()))
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let works = match command.spawn() {
        Ok(mut child) => {
            let stderr = child.stderr.take();
            // KVM failing on guest code says so on stderr at once; no need to wait it out.
            let internal_error = async {
                if let Some(stderr) = stderr {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.contains("KVM internal error") {
                            return;
                        }
                    }
                }
                std::future::pending::<()>().await
            };
            let outcome = tokio::time::timeout(Duration::from_secs(5), async {
                tokio::select! {
                    status = child.wait() => status.ok().and_then(|s| s.code()) == Some(99),
                    _ = internal_error => false,
                }
            })
            .await;
            outcome.unwrap_or(false)
        }
        Err(_) => false,
    };
    let _ = std::fs::remove_file(&image);
    if works {
        Accel::Kvm
    } else {
        tracing::info!("KVM does not run guests correctly here; using TCG");
        Accel::Tcg
    }
}

#[async_trait]
impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn accelerator(&self) -> Option<&'static str> {
        Some(self.accel.as_str())
    }

    async fn inspect(&self, uid: Uuid) -> Result<Option<VmInfo>, DriverError> {
        if self.spec(uid)?.is_none() {
            return Ok(None);
        }
        if self.live_pid(uid).is_some() {
            let state = match self.qmp(uid, "query-status").await {
                Ok(status) => match status["status"].as_str() {
                    Some("paused" | "suspended") => VmState::Paused,
                    _ => VmState::Running,
                },
                // Starting up, or busy: still a running process.
                Err(_) => VmState::Running,
            };
            return Ok(Some(VmInfo {
                state,
                stop_reason: None,
            }));
        }
        let dir = self.dir(uid);
        let stopped_by_agent = dir.join(STOPPED_BY_AGENT).exists();
        let exit_code = dir.join(EXIT_CODE);
        if !stopped_by_agent && dir.join(SERIAL).exists() && !exit_code.exists() {
            // QEMU ended on its own; its supervisor writes the exit code a moment later.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(25)).await;
                if exit_code.exists() {
                    break;
                }
            }
            if !exit_code.exists() {
                // The supervisor is gone too (killed with it): say so, once.
                let _ = std::fs::write(&exit_code, "unknown");
            }
        }
        let stop_reason = if stopped_by_agent {
            None
        } else {
            std::fs::read_to_string(&exit_code)
                .ok()
                .map(|code| match code.trim() {
                    "0" => "the guest powered off".to_owned(),
                    "unknown" => "QEMU ended without leaving an exit code (killed?)".to_owned(),
                    other => format!("QEMU exited with code {other}"),
                })
        };
        Ok(Some(VmInfo {
            state: VmState::Stopped,
            stop_reason,
        }))
    }

    async fn list(&self) -> Result<Vec<Uuid>, DriverError> {
        let entries =
            std::fs::read_dir(&self.config.vm_dir).map_err(io(self.config.vm_dir.display()))?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Uuid::parse_str(&e.file_name().to_string_lossy()).ok())
            .collect())
    }

    async fn prepare(&self, spec: &VmSpec) -> Result<(), DriverError> {
        let dir = self.dir(spec.uid);
        std::fs::create_dir_all(&dir).map_err(io(dir.display()))?;
        self.ensure_disks(spec).await?;
        self.plumb(spec, true).await?;
        let text = serde_json::to_string_pretty(spec)
            .map_err(|e| DriverError::Permanent(e.to_string()))?;
        let tmp = dir.join("spec.json.tmp");
        std::fs::write(&tmp, text).map_err(io(tmp.display()))?;
        std::fs::rename(&tmp, dir.join(SPEC)).map_err(io(dir.display()))
    }

    async fn boot(&self, uid: Uuid) -> Result<(), DriverError> {
        if self.live_pid(uid).is_some() {
            return Ok(());
        }
        let spec = self
            .spec(uid)?
            .ok_or_else(|| DriverError::NotFound(format!("VM {uid} is not prepared")))?;
        self.ensure_disks(&spec).await?;
        self.plumb(&spec, false).await?;
        let dir = self.dir(uid);
        for stale in [EXIT_CODE, STOPPED_BY_AGENT, QMP, PID] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        self.serve_metadata(&spec).await?;
        self.write_proxy_script(uid)?;
        let seed = dir.join(SEED);
        self.guest_metadata(&spec)
            .write_seed(&seed)
            .map_err(io(seed.display()))?;
        let log = std::fs::File::create(dir.join("qemu.log")).map_err(io("qemu.log"))?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("\"$@\"; echo $? > {EXIT_CODE}"))
            .arg("stratus-vm")
            .arg(&self.config.binary)
            .args(self.qemu_args(&spec))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("qemu.log"))?)
            .stderr(log)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| DriverError::Permanent(format!("starting {}: {e}", self.config.binary)))?;
        // Reap the supervisor when it ends; QEMU itself outlives an agent restart.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        self.wait_started(uid).await
    }

    async fn reset(&self, uid: Uuid) -> Result<(), DriverError> {
        self.qmp(uid, "system_reset").await.map(|_| ())
    }

    async fn pause(&self, uid: Uuid) -> Result<(), DriverError> {
        self.qmp(uid, "stop").await.map(|_| ())
    }

    async fn resume(&self, uid: Uuid) -> Result<(), DriverError> {
        self.qmp(uid, "cont").await.map(|_| ())
    }

    async fn power_off(&self, uid: Uuid) -> Result<Option<String>, DriverError> {
        let how = self.stop_process(uid, self.config.shutdown_grace).await?;
        self.stop_metadata(uid).await;
        if let Some(spec) = self.spec(uid)? {
            for (i, disk) in spec.disks.iter().enumerate() {
                if disk.disk_type == Some(DiskType::Temporary) {
                    let _ = std::fs::remove_file(self.dir(uid).join(format!("disk-{i}.qcow2")));
                }
            }
        }
        Ok(how)
    }

    async fn destroy(&self, uid: Uuid) -> Result<(), DriverError> {
        self.stop_process(uid, Duration::ZERO).await?;
        self.stop_metadata(uid).await;
        if let Some(plane) = &self.plane {
            plane.remove(uid).await?;
            self.plumbed.lock().await.remove(&uid);
        }
        let dir = self.dir(uid);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir.display())(e)),
            _ => Ok(()),
        }
    }

    async fn serial_output(&self, uid: Uuid, from: u64) -> Result<(u64, Vec<u8>), DriverError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.dir(uid).join(SERIAL);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return Ok((from, Vec::new())),
        };
        let len = file.metadata().map_err(io(path.display()))?.len();
        let start = from.min(len);
        file.seek(SeekFrom::Start(start))
            .map_err(io(path.display()))?;
        let mut bytes = Vec::new();
        file.take(SERIAL_CHUNK)
            .read_to_end(&mut bytes)
            .map_err(io(path.display()))?;
        Ok((start, bytes))
    }

    async fn observe_overlay(&self, peers: &[OverlayPeer]) -> Result<(), DriverError> {
        match &self.plane {
            Some(plane) => plane.observe_overlay(peers).await,
            None => Ok(()),
        }
    }

    async fn observe(&self, spec: &VmSpec) -> Result<(), DriverError> {
        // After a restart, the first poll repairs what this process has not plumbed yet.
        if !self.plumbed.lock().await.contains(&spec.uid) {
            self.plumb(spec, false).await?;
        }
        if self.live_pid(spec.uid).is_some() {
            self.serve_metadata(spec).await?;
        }
        Ok(())
    }
}
