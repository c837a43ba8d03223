//! Real guests: the `qemu` driver booting the test guest that `scripts/build-test-guest.sh`
//! makes from Debian's packages. The guest prints what it reads from the metadata service on
//! its serial console, which these tests read back through the API.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use stratus::Config;
use stratus_core::catalog::{Catalog, ImageSpec};

const BOOT: Duration = Duration::from_secs(90);
const IMAGE: &str = "/v1/regions/local-1/compute/images/stratus-test-guest";

/// The test guest image, built (once, cached) by the repository's script.
fn test_guest() -> PathBuf {
    if let Ok(path) = std::env::var("STRATUS_TEST_GUEST") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/build-test-guest.sh"))
        .arg(root.join("target/test-guest"))
        .output()
        .expect("running scripts/build-test-guest.sh");
    assert!(
        output.status.success(),
        "building the test guest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

pub fn qemu_config() -> Config {
    let mut config = fast_config();
    config.host.driver = "qemu".into();
    config.host.vcpus = 8;
    config.host.memory_mb = 8192;
    config.qemu.shutdown_grace_s = 1;
    config.qemu.stratus_binary = env!("CARGO_BIN_EXE_stratus").into();
    let mut catalog = Catalog::builtin();
    catalog.images.push(ImageSpec {
        id: "stratus-test-guest".into(),
        display_name: "Stratus test guest".into(),
        description: String::new(),
        os: "busybox".into(),
        format: "raw".into(),
        size_bytes: 64 << 20,
        min_disk_gb: 1,
        file: Some(test_guest().display().to_string()),
    });
    config.catalog = Some(catalog);
    config
}

pub fn guest_body(id: &str, ssh_keys: &str) -> Value {
    json!({
        "id": id,
        "type": TYPE_MICRO,
        "disks": [{"boot": true, "source": IMAGE, "sizeGb": 1}],
        "instanceMetadata": [
            {"key": "ssh-keys", "value": ssh_keys},
            {"key": "user-data", "value": format!("#cloud-config\nhostname: {id}\n")},
        ],
    })
}

/// QEMU processes whose command line names `uid`.
pub fn qemu_processes(uid: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_qemu = args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("qemu-system"));
        if is_qemu && args.contains(&uid.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

fn between<'a>(console: &'a str, what: &str) -> &'a str {
    let begin = format!("stratus-guest: begin {what}");
    let end = format!("stratus-guest: end {what}");
    let start = console.find(&begin).map(|i| i + begin.len()).unwrap_or(0);
    let stop = console[start..]
        .find(&end)
        .map(|i| start + i)
        .unwrap_or(start);
    console[start..stop].trim()
}

fn sha256_of(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

/// Registers the test guest as image `id` through the API and waits until it is READY.
async fn register_test_guest(c: &Client, id: &str) -> Value {
    let file = test_guest();
    let reply = c
        .post(
            "/v1/regions/local-1/compute/images",
            json!({"id": id, "source": file, "format": "raw", "os": "busybox",
                   "sha256": sha256_of(&file)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    assert!(matches!(
        reply.body["status"].as_str(),
        Some("PENDING" | "IMPORTING")
    ));
    let deadline = std::time::Instant::now() + BOOT;
    loop {
        let image = c
            .get(&format!("/v1/regions/local-1/compute/images/{id}"))
            .await;
        match image.body["status"].as_str() {
            Some("READY") => return image.body,
            Some("FAILED") => panic!("import failed: {:#}", image.body),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import too slow: {:#}",
            image.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn images_import_with_checksums_and_formats_checked() {
    let region = TestRegion::with_config(qemu_config()).await;
    let c = &region.client;
    let image = register_test_guest(c, "imported").await;
    assert_eq!(image["minDiskGb"], 1);
    assert_eq!(image["sizeBytes"], 64 << 20);
    assert_eq!(image["sha256"].as_str().unwrap(), sha256_of(&test_guest()));
    let file = test_guest();
    let images = "/v1/regions/local-1/compute/images";
    // A wrong checksum and a wrong format fail the import with the reason.
    for (id, body, reason) in [
        (
            "bad-sum",
            json!({"sha256": "0".repeat(64), "format": "raw"}),
            "checksum mismatch",
        ),
        (
            "bad-format",
            json!({"format": "qcow2"}),
            "registration says qcow2",
        ),
    ] {
        let mut request = json!({"id": id, "source": file});
        for (k, v) in body.as_object().unwrap() {
            request[k] = v.clone();
        }
        assert_eq!(c.post(images, request).await.status, StatusCode::CREATED);
        let deadline = std::time::Instant::now() + BOOT;
        let failed = loop {
            let reply = c.get(&format!("{images}/{id}")).await;
            if reply.body["status"] == "FAILED" {
                break reply.body;
            }
            assert!(std::time::Instant::now() < deadline, "{:#}", reply.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let message = failed["statusMessage"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
        // A failed image cannot back a disk.
        let reply = c
            .post(
                INSTANCES,
                json!({"type": TYPE_MICRO, "disks": [{"boot": true, "source": format!("{images}/{id}")}]}),
            )
            .await;
        reply.assert_error(400);
        assert_eq!(reply.field(), "disks[0].source");
    }
    for (body, field) in [
        (
            json!({"id": "x", "source": "relative/path", "format": "raw"}),
            "source",
        ),
        (
            json!({"id": "x", "source": "/no/such/file", "format": "raw"}),
            "source",
        ),
        (
            json!({"id": "x", "source": "/etc/hostname", "format": "vmdk"}),
            "format",
        ),
        (
            json!({"id": "x", "source": "/etc/hostname", "format": "raw", "sha256": "abc"}),
            "sha256",
        ),
        (
            json!({"id": "Bad", "source": "/etc/hostname", "format": "raw"}),
            "id",
        ),
    ] {
        let reply = c.post(images, body.clone()).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{body}");
    }
    c.post(
        images,
        json!({"id": "imported", "source": file, "format": "raw"}),
    )
    .await
    .assert_error(409);
    // A disk smaller than the image needs is refused.
    let reply = c
        .post(
            images,
            json!({"id": "needs-three", "source": file, "format": "raw", "minDiskGb": 3}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + BOOT;
    while c.get(&format!("{images}/needs-three")).await.body["status"] != "READY" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let small = c
        .post(
            INSTANCES,
            json!({"type": TYPE_MICRO, "disks": [{"boot": true, "source": format!("{images}/needs-three"), "sizeGb": 2}]}),
        )
        .await;
    small.assert_error(400);
    assert_eq!(small.field(), "disks[0].sizeGb");
    assert!(small.message().contains("needs 3"), "{}", small.message());
    // An image in use cannot be deleted; an unused one can.
    let vm = c
        .post(
            INSTANCES,
            json!({"id": "user", "type": TYPE_MICRO,
                   "disks": [{"boot": true, "source": format!("{images}/imported")}]}),
        )
        .await;
    assert_eq!(vm.status, StatusCode::CREATED, "{:#}", vm.body);
    c.delete(&format!("{images}/imported"))
        .await
        .assert_error(409);
    assert_eq!(
        c.delete(&format!("{images}/bad-sum")).await.status,
        StatusCode::NO_CONTENT
    );
    region.stop().await;
}

#[tokio::test]
async fn real_guests_read_their_own_metadata_keep_their_disks_and_power_off() {
    let region = TestRegion::with_config(qemu_config()).await;
    let c = &region.client;
    let vms = region.dir.path().join("vms");
    register_test_guest(c, "registered-guest").await;
    for (id, key) in [
        ("alpha", "alice:ssh-ed25519 AAAAalpha alice"),
        ("beta", "bob:ssh-ed25519 AAAAbeta bob"),
    ] {
        let reply = c.post(INSTANCES, guest_body(id, key)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    }
    let alpha = c.wait_status("alpha", "RUNNING", BOOT).await;
    c.wait_status("beta", "RUNNING", BOOT).await;
    let uid = alpha["uid"].as_str().unwrap().to_owned();

    // Each guest sees its own metadata, and only with the header.
    for (id, key, other) in [
        ("alpha", "AAAAalpha", "AAAAbeta"),
        ("beta", "AAAAbeta", "AAAAalpha"),
    ] {
        let console = c.wait_console(id, "stratus-guest: ready", BOOT).await;
        let text = console["contents"].as_str().unwrap();
        assert!(
            between(text, "instance/attributes/ssh-keys").contains(key),
            "{text}"
        );
        assert!(
            !text.contains(other),
            "{id} saw another guest's metadata: {text}"
        );
        assert_eq!(between(text, "instance/hostname"), id, "{text}");
        assert_eq!(between(text, "project/project-id"), "default", "{text}");
        assert!(between(text, "instance/attributes/user-data").contains("#cloud-config"));
        assert!(
            text.contains("request without Metadata-Flavor was refused"),
            "{text}"
        );
        assert!(text.contains("boot number 1"), "{text}");
        let uid = c.get(&format!("{INSTANCES}/{id}")).await.body["uid"].clone();
        assert!(
            text.contains(&format!("seed instance-id: {}", uid.as_str().unwrap())),
            "the NoCloud seed is missing: {text}"
        );
    }
    assert_eq!(qemu_processes(&uid).len(), 1);

    // Stop: TERMINATED and no QEMU left; start: the marker written at the first boot is there.
    c.action("alpha", "stop").await;
    c.wait_status("alpha", "TERMINATED", BOOT).await;
    assert!(
        qemu_processes(&uid).is_empty(),
        "QEMU still runs after stop"
    );
    c.action("alpha", "start").await;
    c.wait_status("alpha", "RUNNING", BOOT).await;
    c.wait_console("alpha", "boot number 2", BOOT).await;

    // A metadata change reaches the guest's long-poll; this guest powers off when told.
    let reply = c
        .patch(
            &format!("{INSTANCES}/beta"),
            json!({"instanceMetadata": [{"key": "poweroff", "value": "now"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let beta = c.wait_status("beta", "TERMINATED", BOOT).await;
    assert_eq!(beta["lifecycle"]["statusMessage"], "the guest powered off");
    c.wait_console("beta", "stratus-guest: powering off", BOOT)
        .await;

    // Delete: no process, no disks, no sockets left on the host.
    for id in ["alpha", "beta"] {
        assert_eq!(
            c.delete(&format!("{INSTANCES}/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
    }
    for id in ["alpha", "beta"] {
        c.wait_gone(id, BOOT).await;
    }
    assert!(qemu_processes(&uid).is_empty());
    assert!(!vms.join(&uid).exists(), "the VM directory is left behind");
    region.stop().await;
}

#[tokio::test]
async fn a_killed_serve_comes_back_to_find_its_guests_running_and_adopts_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = qemu_config();
    let (mut child, base) = spawn_serve(dir.path(), &config).await;
    let key = std::fs::read_to_string(dir.path().join("data/admin-api-key")).unwrap();
    let c = Client::login(&base, key.trim()).await;
    let created = c
        .post(
            INSTANCES,
            guest_body("survivor", "carol:ssh-ed25519 AAAAc carol"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let uid = created.body["uid"].as_str().unwrap().to_owned();
    c.wait_console("survivor", "stratus-guest: ready", BOOT)
        .await;
    let before = qemu_processes(&uid);
    assert_eq!(before.len(), 1);

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(
        qemu_processes(&uid),
        before,
        "the guest keeps running without its agent"
    );

    let (child, base) = spawn_serve(dir.path(), &config).await;
    let c = Client::login(&base, key.trim()).await;
    // Through a few agent polls the instance stays RUNNING on the same QEMU process.
    for _ in 0..10 {
        let i = c.get(&format!("{INSTANCES}/survivor")).await;
        assert_eq!(i.body["lifecycle"]["status"], "RUNNING", "{:#}", i.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(qemu_processes(&uid), before, "no second QEMU, no restart");
    // The adopted guest is still served its metadata: a change reaches its long-poll.
    c.patch(
        &format!("{INSTANCES}/survivor"),
        json!({"instanceMetadata": [{"key": "poweroff", "value": "now"}]}),
    )
    .await;
    let i = c.wait_status("survivor", "TERMINATED", BOOT).await;
    assert_eq!(i["lifecycle"]["statusMessage"], "the guest powered off");
    drop(child);
    kill_processes_mentioning(&dir.path().display().to_string());
}

/// Starts `stratus agent` as its own process against `control_plane`.
async fn spawn_agent(dir: &Path, control_plane: &str, config: &Config) -> tokio::process::Child {
    let config_file = dir.join("agent.toml");
    std::fs::write(&config_file, toml::to_string(config).unwrap()).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args([
            "agent",
            "--driver",
            "qemu",
            "--name",
            "remote-host",
            "--control-plane",
        ])
        .arg(control_plane)
        .arg("--credential-file")
        .arg(dir.join("host-credential"))
        .arg("--data-dir")
        .arg(dir.join("agent"))
        .arg("--config")
        .arg(&config_file)
        .env("STRATUS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_separate_agent_runs_guests_and_adopts_them_after_kill_9() {
    let mut config = qemu_config();
    config.host.enabled = false;
    let region = TestRegion::with_config(config.clone()).await;
    let c = &region.client;
    let credential = std::fs::read_to_string(region.dir.path().join("host-credential")).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    std::fs::write(agent_dir.path().join("host-credential"), credential).unwrap();
    // A wrong credential is refused.
    let refused = Client::anonymous(&c.base)
        .send(
            reqwest::Method::POST,
            "/internal/v1/hosts",
            Some(json!({"name": "x", "zone": "local-1a", "driver": "sim", "vcpus": 1, "memory_mb": 1, "gpus": []})),
            &[("authorization", "Bearer sth_wrong")],
        )
        .await;
    refused.assert_error(401);

    // An unreachable URL first: the agent fails over to the next one.
    let urls = format!("http://127.0.0.1:9,{}", c.base);
    let mut agent = spawn_agent(agent_dir.path(), &urls, &config).await;
    let deadline = std::time::Instant::now() + BOOT;
    loop {
        let reply = c
            .post(
                INSTANCES,
                guest_body("remote", "dave:ssh-ed25519 AAAAd dave"),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(reply.reason(), "RESOURCE_EXHAUSTED", "{:#}", reply.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never registered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let i = c.wait_status("remote", "RUNNING", BOOT).await;
    let uid = i["uid"].as_str().unwrap().to_owned();
    let console = c.wait_console("remote", "stratus-guest: ready", BOOT).await;
    assert!(console["contents"].as_str().unwrap().contains("AAAAd"));
    let before = qemu_processes(&uid);
    assert_eq!(before.len(), 1);

    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    assert_eq!(qemu_processes(&uid), before, "the guest outlives its agent");
    let _agent = spawn_agent(agent_dir.path(), &c.base, &config).await;
    for _ in 0..10 {
        let i = c.get(&format!("{INSTANCES}/remote")).await;
        assert_eq!(i.body["lifecycle"]["status"], "RUNNING", "{:#}", i.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(qemu_processes(&uid), before, "adopted, not restarted");

    assert_eq!(
        c.delete(&format!("{INSTANCES}/remote")).await.status,
        StatusCode::NO_CONTENT
    );
    c.wait_gone("remote", BOOT).await;
    assert!(qemu_processes(&uid).is_empty());
    assert!(!agent_dir.path().join("agent/vms").join(&uid).exists());
    kill_processes_mentioning(&agent_dir.path().display().to_string());
    region.stop().await;
}

#[tokio::test]
async fn nvme_and_temporary_disks_behave_as_declared() {
    let region = TestRegion::with_config(qemu_config()).await;
    let c = &region.client;
    let mut body = guest_body("scratch", "erin:ssh-ed25519 AAAAe erin");
    body["disks"] = json!([
        {"boot": true, "source": IMAGE, "sizeGb": 1, "interface": "NVME", "type": "TEMPORARY"},
        {"sizeGb": 2, "interface": "SCSI"},
    ]);
    let created = c.post(INSTANCES, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let uid = created.body["uid"].as_str().unwrap().to_owned();
    let console = c
        .wait_console("scratch", "stratus-guest: ready", BOOT)
        .await;
    let text = console["contents"].as_str().unwrap();
    assert!(text.contains("boot disk /dev/nvme0n1"), "{text}");
    assert!(text.contains("boot number 1"), "{text}");
    // The extra disk is blank and of the asked size.
    let extra = region
        .dir
        .path()
        .join("vms")
        .join(&uid)
        .join("disk-1.qcow2");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&extra)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["virtual-size"], 2u64 << 30);
    assert!(info.get("backing-filename").is_none());
    // A temporary boot disk starts over after a stop: the marker is gone.
    c.action("scratch", "stop").await;
    c.wait_status("scratch", "TERMINATED", BOOT).await;
    c.action("scratch", "start").await;
    c.wait_status("scratch", "RUNNING", BOOT).await;
    let deadline = std::time::Instant::now() + BOOT;
    loop {
        let console = c
            .get(&format!("{INSTANCES}/scratch/serialPortOutput"))
            .await;
        let text = console.body["contents"].as_str().unwrap().to_owned();
        if text.matches("stratus-guest: ready").count() >= 2 {
            assert_eq!(text.matches("boot number 1").count(), 2, "{text}");
            assert!(!text.contains("boot number 2"), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    region.stop().await;
}

#[tokio::test]
async fn serve_with_no_configuration_boots_real_guests() {
    let mut config = Config::default();
    config.agent.poll_wait_ms = 500;
    config.qemu.stratus_binary = env!("CARGO_BIN_EXE_stratus").into();
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let reply = c
        .post(
            INSTANCES,
            json!({"id": "first", "type": "/v1/regions/local-1/zones/local-1a/instance-types/e2-small",
                   "disks": [{"boot": true, "source": "/v1/regions/local-1/compute/images/stratus-guest", "sizeGb": 1}],
                   "instanceMetadata": [{"key": "ssh-keys", "value": "frank:ssh-ed25519 AAAAf frank"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let console = c.wait_console("first", "stratus-guest: ready", BOOT).await;
    assert!(console["contents"].as_str().unwrap().contains("AAAAf"));
    let uid = reply.body["uid"].as_str().unwrap();
    assert_eq!(qemu_processes(uid).len(), 1, "a real QEMU guest");
    region.stop().await;
}

/// The attack: a guest connects to the host through user-mode networking, whose host address
/// leads to every service on the host's loopback (this region's API among them). The guest
/// reaches its metadata and nothing else. And a guest that ignores the ACPI power-off request
/// is stopped hard after the grace, which its status message says.
#[tokio::test]
async fn guests_reach_only_their_metadata_and_a_hard_stop_says_so() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let region = TestRegion::with_config(qemu_config()).await;
    let c = &region.client;
    let mut body = guest_body("prober", "mallory:ssh-ed25519 AAAA mallory");
    body["instanceMetadata"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "probe-host-port", "value": port.to_string()}));
    let reply = c.post(INSTANCES, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let console = c.wait_console("prober", "stratus-guest: ready", BOOT).await;
    let text = console["contents"].as_str().unwrap();
    assert!(
        text.contains(&format!("host port {port} unreachable")),
        "{text}"
    );
    assert!(
        between(text, "instance/attributes/ssh-keys").contains("mallory"),
        "the metadata service still answers: {text}"
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the guest reached a service on the host's loopback"
    );

    c.action("prober", "stop").await;
    let stopped = c.wait_status("prober", "TERMINATED", BOOT).await;
    let message = stopped["lifecycle"]["statusMessage"].as_str().unwrap_or("");
    assert!(message.contains("stopped hard"), "{stopped:#}");
    region.stop().await;
}

/// The host's first global IPv4 address.
fn host_address() -> String {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("the host has a global IPv4 address")
        .to_owned()
}

fn names_in(dir: &str, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Real guests on bridged networks: neighbours on one network reach each other, guests of an
/// overlapping network and forged sources do not, nothing of the host is reachable, each guest
/// reads its own metadata through its gateway, and deleting the guests removes every bridge,
/// tap, namespace, dnsmasq and filter of their networks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_guests_reach_their_network_and_nothing_else() {
    // Something listening on every address of the host, as its services would.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let host = host_address();

    let mut config = qemu_config();
    config.host.networking = "bridge".into();
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let networks = "/v1/regions/local-1/projects/default/compute/networks";
    for id in ["net-a", "net-b"] {
        let made = c
            .post(networks, json!({"id": id, "cidr": "10.90.0.0/24"}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    }
    let guest = |id: &str, network: &str, ip: &str, probes: &[(&str, String)]| {
        let mut body = guest_body(id, "alice:ssh-ed25519 AAAA alice");
        body["nics"] = json!([{"network": format!("{networks}/{network}"), "ipv4Address": ip}]);
        for (key, value) in probes {
            body["instanceMetadata"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": key, "value": value}));
        }
        body
    };
    let a1 = c
        .post(INSTANCES, guest("a1", "net-a", "10.90.0.10", &[]))
        .await;
    assert_eq!(a1.status, StatusCode::CREATED, "{:#}", a1.body);
    c.wait_console("a1", "stratus-guest: ready", BOOT).await;
    let probes = |peer: &str| {
        vec![
            ("probe-ping", format!("{peer},10.90.0.1")),
            (
                "probe-tcp",
                format!("{peer}:7,{host}:{port},10.90.0.1:{port}"),
            ),
            ("probe-spoof", format!("10.90.0.12>{peer}")),
        ]
    };
    let a2 = c
        .post(
            INSTANCES,
            guest("a2", "net-a", "10.90.0.11", &probes("10.90.0.10")),
        )
        .await;
    assert_eq!(a2.status, StatusCode::CREATED, "{:#}", a2.body);
    // The same address as a2, in a network with the same CIDR.
    let b1 = c
        .post(
            INSTANCES,
            guest("b1", "net-b", "10.90.0.11", &probes("10.90.0.10")),
        )
        .await;
    assert_eq!(b1.status, StatusCode::CREATED, "{:#}", b1.body);

    let a2_console = c.wait_console("a2", "stratus-guest: ready", BOOT).await;
    let a2_text = a2_console["contents"].as_str().unwrap();
    for line in [
        "address 10.90.0.11/24",
        "ping 10.90.0.10 REACHABLE",
        "ping 10.90.0.1 REACHABLE",
        "tcp 10.90.0.10:7 REACHABLE",
        &format!("tcp {host}:{port} unreachable"),
        &format!("tcp 10.90.0.1:{port} unreachable"),
        "spoofed ping from 10.90.0.12 to 10.90.0.10 unreachable",
    ] {
        assert!(
            a2_text.contains(line),
            "a2 should print {line:?}:\n{a2_text}"
        );
    }
    assert_eq!(
        between(a2_text, "instance/id").trim(),
        a2.body["uid"].as_str().unwrap(),
        "a2 reads its own metadata through its gateway"
    );
    let b1_console = c.wait_console("b1", "stratus-guest: ready", BOOT).await;
    let b1_text = b1_console["contents"].as_str().unwrap();
    for line in [
        "address 10.90.0.11/24",
        "ping 10.90.0.10 unreachable",
        "tcp 10.90.0.10:7 unreachable",
        "ping 10.90.0.1 REACHABLE",
    ] {
        assert!(
            b1_text.contains(line),
            "b1 should print {line:?}:\n{b1_text}"
        );
    }
    assert_eq!(
        between(b1_text, "instance/id").trim(),
        b1.body["uid"].as_str().unwrap(),
        "the same address in another network is another guest"
    );

    for id in ["a1", "a2", "b1"] {
        c.delete(&format!("{INSTANCES}/{id}")).await;
    }
    for id in ["a1", "a2", "b1"] {
        c.wait_gone(id, Duration::from_secs(30)).await;
    }
    assert!(names_in("/var/run/netns", "stratus-n").is_empty());
    for prefix in ["sbr", "svh", "stp"] {
        assert!(
            names_in("/sys/class/net", prefix).is_empty(),
            "{prefix}* links are left: {:?}",
            names_in("/sys/class/net", prefix)
        );
    }
    let dnsmasq: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("dnsmasq") && c.contains("--interface=svn"))
        .collect();
    assert!(dnsmasq.is_empty(), "dnsmasq is left: {dnsmasq:?}");
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("bridge stratus"),
        "the filter table is left"
    );
    region.stop().await;
}
