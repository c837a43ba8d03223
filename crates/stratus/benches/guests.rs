//! Real-guest benchmark: how long from `POST …/instances` to RUNNING, to the guest's first
//! line on the console, and to the guest having printed its metadata, next to a bare
//! `qemu-system-x86_64` boot of the same image on the same machine. Prints a results table.
//!
//!     cargo bench -p stratus --bench guests
//!
//! Needs QEMU and the test guest (`scripts/build-test-guest.sh`, which `scripts/test.sh` runs).

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratus::{Config, Region};
use stratus_core::catalog::{Catalog, ImageSpec};

mod common;

const RUNS: usize = 3;
const INSTANCES: &str = "/v1/regions/local-1/projects/default/compute/instances";

fn test_guest() -> PathBuf {
    if let Ok(path) = std::env::var("STRATUS_TEST_GUEST") {
        return path.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/build-test-guest.sh"))
        .arg(root.join("target/test-guest"))
        .output()
        .expect("building the test guest");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Boots the image with QEMU alone; returns the times to the first guest line and to "ready".
async fn raw_boot(image: &Path, accel: &str, scratch: &Path) -> (Duration, Duration) {
    let overlay = scratch.join("raw.qcow2");
    let serial = scratch.join("raw-serial.log");
    let _ = std::fs::remove_file(&overlay);
    let _ = std::fs::remove_file(&serial);
    std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(image)
        .arg(&overlay)
        .arg("1G")
        .status()
        .unwrap();
    let started = Instant::now();
    let mut child = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            accel,
            "-m",
            "1024",
            "-nodefaults",
            "-display",
            "none",
        ])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", overlay.display()))
        // The guest's network as Stratus sets it up, without the metadata service behind it.
        .args([
            "-netdev",
            "user,id=n0,net=169.254.169.0/24,host=169.254.169.2",
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
        ])
        .arg("-chardev")
        .arg(format!("file,id=s0,path={}", serial.display()))
        .args(["-serial", "chardev:s0"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut booted = None;
    loop {
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        if booted.is_none() && text.contains("stratus-guest: booted") {
            booted = Some(started.elapsed());
        }
        if text.contains("stratus-guest: ready") {
            let ready = started.elapsed();
            let _ = child.kill().await;
            return (booted.unwrap_or(ready), ready);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "raw boot too slow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let image = test_guest();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.host.driver = "qemu".into();
    config.host.vcpus = 8;
    config.host.memory_mb = 8192;
    config.qemu.shutdown_grace_s = 1;
    config.qemu.stratus_binary = env!("CARGO_BIN_EXE_stratus").into();
    config.agent.poll_wait_ms = 500;
    let mut catalog = Catalog::builtin();
    catalog.images.push(ImageSpec {
        id: "guest".into(),
        display_name: String::new(),
        description: String::new(),
        os: "busybox".into(),
        format: "raw".into(),
        size_bytes: 64 << 20,
        min_disk_gb: 1,
        file: Some(image.display().to_string()),
    });
    config.catalog = Some(catalog);
    let region = Region::start(dir.path(), "127.0.0.1:0", config)
        .await
        .unwrap();
    let base = format!("http://{}", region.addr);
    let (http, token) = common::sign_in(&base, &region.admin_key_path, 8).await;
    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            http.get(path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    let (mut running, mut booted, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let id = format!("bench-{run}");
        let started = Instant::now();
        let reply = http
            .post(format!("{base}{INSTANCES}"))
            .bearer_auth(&token)
            .json(&json!({
                "id": id,
                "type": "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro",
                "disks": [{"boot": true, "source": "/v1/regions/local-1/compute/images/guest", "sizeGb": 1}],
                "instanceMetadata": [{"key": "ssh-keys", "value": "bench:ssh-ed25519 AAAA bench"}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        let (mut t_running, mut t_booted) = (None, None);
        loop {
            let elapsed = started.elapsed();
            if t_running.is_none() {
                let i = get(format!("{base}{INSTANCES}/{id}")).await;
                if i["lifecycle"]["status"] == "RUNNING" {
                    t_running = Some(elapsed);
                }
            }
            let console = get(format!("{base}{INSTANCES}/{id}/serialPortOutput")).await;
            let text = console["contents"].as_str().unwrap_or("");
            if t_booted.is_none() && text.contains("stratus-guest: booted") {
                t_booted = Some(elapsed);
            }
            if text.contains("stratus-guest: ready") {
                running.push(t_running.unwrap_or(elapsed));
                booted.push(t_booted.unwrap_or(elapsed));
                ready.push(elapsed);
                break;
            }
            assert!(elapsed < Duration::from_secs(120), "guest too slow");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        http.delete(format!("{base}{INSTANCES}/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    let accel_used = stratus_agent::qemu::probe_accel("qemu-system-x86_64", dir.path())
        .await
        .as_str();
    let (mut raw_booted, mut raw_ready) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (b, r) = raw_boot(&image, accel_used, dir.path()).await;
        raw_booted.push(b);
        raw_ready.push(r);
    }
    println!();
    println!(
        "| median of {RUNS} runs, accelerator {accel_used} | Stratus | bare qemu-system-x86_64 |"
    );
    println!("|---|---|---|");
    println!("| create → RUNNING | {} | – |", secs(median(running)));
    println!(
        "| start → guest's first console line | {} | {} |",
        secs(median(booted)),
        secs(median(raw_booted))
    );
    println!(
        "| start → guest printed its metadata (\"ready\") | {} | {} (no metadata service) |",
        secs(median(ready)),
        secs(median(raw_ready))
    );
    region.shutdown().await;
    let _ = std::process::Command::new("pkill")
        .args(["-9", "-f", &dir.path().display().to_string()])
        .status();
}
