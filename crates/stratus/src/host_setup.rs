//! `[host] driver = "auto"` (the default): real guests wherever QEMU can run, the simulator
//! only where it cannot.
//!
//! A new user's first command is `cargo run -- serve` on a fresh Debian machine, and the first
//! instance they create should be a real VM. So in auto mode `serve` looks for QEMU; when it is
//! missing and the process runs as root with apt, it installs it from Debian's packages; and it
//! builds the small Stratus guest image from Debian's packages (kernel, busybox, SYSLINUX) with
//! the repository's script, making it the catalog's `stratus-guest` image. Whatever fails on
//! the way is said in the log, and the region falls back to the simulator.
//!
//! With QEMU, `[host] networking = "auto"` (the default) becomes real bridged networking when
//! the process is root and `ip`, `nft` and `dnsmasq` are there (installed from Debian's packages
//! when missing), else QEMU's user-mode network. A one-machine region that names no EXTERNAL
//! pool gets `198.51.100.0/24` (a documentation range, RFC 5737, reached from this host only),
//! so `stratus instances ssh` reaches a guest with an external address from the host. And
//! `serve` asks for the `debian-12` image, built from Debian's packages in the background.

use crate::Config;
use std::path::{Path, PathBuf};
use std::process::Command;
use stratus_core::catalog::ImageSpec;

/// The catalog image that the guest built by `scripts/build-test-guest.sh` provides.
pub const GUEST_IMAGE: &str = "stratus-guest";

fn qemu_available(binary: &str) -> bool {
    let found = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    found(binary) && found("qemu-img")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The EXTERNAL pool of a one-machine region that names none.
const LOCAL_EXTERNAL_POOL: &str = "198.51.100.0/24";

/// Whether `program` is on the `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// What bridged networking runs: present, or installed from Debian's packages (as root).
fn bridge_tools() -> Result<(), String> {
    let present = || ["ip", "nft", "dnsmasq"].iter().all(|p| on_path(p));
    if present() {
        return Ok(());
    }
    tracing::info!("installing iproute2, nftables and dnsmasq-base for bridged networking");
    for args in [
        &["apt-get", "update", "-qq"][..],
        &[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "iproute2",
            "nftables",
            "dnsmasq-base",
        ][..],
    ] {
        let status = Command::new(args[0])
            .args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", args.join(" ")))?;
        if !status.success() {
            return Err(format!("{} failed", args.join(" ")));
        }
    }
    if present() {
        Ok(())
    } else {
        Err("ip, nft or dnsmasq is still missing".into())
    }
}

/// Installs QEMU from Debian's packages, naming `qemu-utils` at the same version so a newer
/// `qemu-utils` is not removed without a replacement.
fn install_qemu() -> Result<(), String> {
    if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(
            "QEMU is not installed and this process cannot install it (needs root and apt); \
             install it with `apt-get install qemu-system-x86 qemu-utils`"
                .into(),
        );
    }
    tracing::info!("installing QEMU from Debian's packages (this takes a minute, once)");
    let run = |args: &[&str]| -> Result<String, String> {
        let output = Command::new(args[0])
            .args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("{}: {e}", args.join(" ")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    };
    run(&["apt-get", "update", "-qq"])?;
    let madison = run(&["apt-cache", "madison", "qemu-system-x86"])?;
    let version = madison
        .lines()
        .next()
        .and_then(|l| l.split('|').nth(1))
        .map(str::trim)
        .ok_or("apt knows no qemu-system-x86 package")?;
    let utils = format!("qemu-utils={version}");
    run(&[
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--allow-downgrades",
        "qemu-system-x86",
        &utils,
    ])?;
    Ok(())
}

/// The guest image build script of the source tree this binary was built from, if present.
fn guest_script() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-guest.sh");
    script.is_file().then_some(script)
}

/// Builds (or finds, cached) the guest image under `data_dir`.
fn build_guest(data_dir: &Path) -> Result<PathBuf, String> {
    let script = guest_script().ok_or("the guest image script is not available to this binary")?;
    tracing::info!(
        "building the stratus-guest image from Debian's packages (cached after the first time)"
    );
    let output = Command::new("bash")
        .arg(&script)
        .arg(data_dir.join("guest-image"))
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "building the guest image failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

fn memory_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// Decides the driver of an `auto` host and prepares what it needs. With `with_image`, also
/// provides the `stratus-guest` image file (for `serve`; remote agents get images from the
/// control plane).
pub fn resolve(config: &mut Config, data_dir: &Path, with_image: bool) {
    if config.host.driver != "auto" {
        return;
    }
    if !qemu_available(&config.qemu.binary)
        && let Err(why) = install_qemu()
    {
        tracing::warn!("{why}; the host runs simulated guests");
        config.host.driver = "sim".into();
        return;
    }
    if !qemu_available(&config.qemu.binary) {
        tracing::warn!("QEMU does not run here; the host runs simulated guests");
        config.host.driver = "sim".into();
        return;
    }
    config.host.driver = "qemu".into();
    if config.host.networking == "auto" {
        let bridged = if !is_root() {
            Err("bridged networking needs root".to_owned())
        } else {
            bridge_tools()
        };
        match bridged {
            Ok(()) => {
                config.host.networking = "bridge".into();
                if config.networks.external_cidr.is_empty() {
                    config.networks.external_cidr = LOCAL_EXTERNAL_POOL.into();
                }
            }
            Err(why) => {
                tracing::warn!("{why}; guests use QEMU's user-mode network (metadata only)");
                config.host.networking = "user".into();
            }
        }
    }
    let defaults = crate::config::HostSection::default();
    if config.host.vcpus == defaults.vcpus && config.host.memory_mb == defaults.memory_mb {
        // A real host offers what it has: its memory, and its cores four times over (idle
        // guests rarely keep a vCPU busy).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        config.host.vcpus = cores * 4;
        config.host.memory_mb = memory_mb().unwrap_or(defaults.memory_mb);
        config.host.gpus.clear();
    }
    if !with_image {
        return;
    }
    // A real OS to log in to, built in the background (its progress in the image's status).
    if !config.images.build.iter().any(|id| id == "debian-12") {
        config.images.build.push("debian-12".into());
    }
    match build_guest(data_dir) {
        Ok(file) => {
            let mut catalog = config.catalog();
            match catalog.images.iter_mut().find(|i| i.id == GUEST_IMAGE) {
                Some(image) if image.file.is_none() => {
                    image.file = Some(file.display().to_string())
                }
                Some(_) => {}
                None => catalog.images.push(ImageSpec {
                    file: Some(file.display().to_string()),
                    ..stratus_core::catalog::Catalog::builtin()
                        .images
                        .into_iter()
                        .find(|i| i.id == GUEST_IMAGE)
                        .expect("the built-in catalog has the guest image")
                }),
            }
            config.catalog = Some(catalog);
        }
        Err(why) => tracing::warn!("{why}; register an image to boot guests"),
    }
}
