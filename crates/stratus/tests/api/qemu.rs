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

/// An image built (once, cached) by the repository's `script` into `out` under `target/`, or
/// the one the environment variable `given` names (scripts/test.sh builds them first).
pub(crate) fn built_image(given: &str, script: &str, out: &str) -> PathBuf {
    if let Ok(path) = std::env::var(given) {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts").join(script))
        .arg(root.join("target").join(out))
        .output()
        .unwrap_or_else(|e| panic!("running scripts/{script}: {e}"));
    assert!(
        output.status.success(),
        "scripts/{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// The test guest image.
fn test_guest() -> PathBuf {
    built_image("STRATUS_TEST_GUEST", "build-test-guest.sh", "test-guest")
}

/// Held by the tests that plumb real networks, one at a time: regions plumbing this machine's
/// own namespace would name their first networks' bridges alike, and each of these tests runs
/// several guests at once (more at a time starve TCG guests on two cores).
pub(crate) static NETWORK_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `debian-12` cloud image, as a catalog entry.
pub(crate) fn debian_image() -> ImageSpec {
    let file = built_image("STRATUS_TEST_DEBIAN", "build-debian-image.sh", "images");
    ImageSpec {
        id: "debian-12".into(),
        display_name: "Debian 12".into(),
        description: String::new(),
        os: "debian".into(),
        format: "raw".into(),
        size_bytes: std::fs::metadata(&file).unwrap().len(),
        min_disk_gb: 2,
        file: Some(file.display().to_string()),
    }
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

/// Starts `stratus agent` with the QEMU driver as its own process against `control_plane`.
fn spawn_remote_agent(dir: &Path, control_plane: &str, config: &Config) -> tokio::process::Child {
    spawn_agent(
        "remote-host",
        "qemu",
        dir,
        &[control_plane],
        &dir.join("host-credential"),
        config,
        &[],
    )
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
    let mut agent = spawn_remote_agent(agent_dir.path(), &urls, &config);
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
    let _agent = spawn_remote_agent(agent_dir.path(), &c.base, &config);
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
    assert!(!agent_dir.path().join("host/vms").join(&uid).exists());
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
    let _network_tests = NETWORK_TESTS.lock().await;
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
    // Its network goes with it (a stopped region would leave it to the next start).
    c.delete(&format!("{INSTANCES}/first")).await;
    c.wait_gone("first", Duration::from_secs(30)).await;
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
    let _network_tests = NETWORK_TESTS.lock().await;
    // Something listening on every address of the host, as its services would.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let host = host_address();
    // Counts what reaches the host's own stack from the guests' addresses, whatever answers.
    let counter = format!(
        "table inet stratus_test_probe {{\n  chain input {{\n    type filter hook input priority -300; policy accept;\n    ip saddr 10.90.0.0/24 tcp dport {port} counter\n  }}\n}}\n"
    );
    let nft = |script: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft -f: {script}");
    };
    nft("table inet stratus_test_probe {}\ndelete table inet stratus_test_probe\n");
    nft(&counter);

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
            ("probe-onlink", format!("{host}:{port}")),
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

    let a2_console = console_says(
        c,
        "a2",
        "a2",
        &[
            "address 10.90.0.11/24",
            "ping 10.90.0.10 REACHABLE",
            "ping 10.90.0.1 REACHABLE",
            "tcp 10.90.0.10:7 REACHABLE",
            &format!("tcp {host}:{port} unreachable"),
            &format!("tcp 10.90.0.1:{port} unreachable"),
            "spoofed ping from 10.90.0.12 to 10.90.0.10 unreachable",
            &format!("on-link tcp {host}:{port} unreachable"),
        ],
    )
    .await;
    let a2_text = a2_console.as_str();
    // a2 sent to the host through its own link (an on-link route to the host's address):
    // nothing of it reached the host.
    let counted = std::process::Command::new("nft")
        .args(["list", "table", "inet", "stratus_test_probe"])
        .output()
        .unwrap();
    let counted = String::from_utf8_lossy(&counted.stdout).into_owned();
    nft("delete table inet stratus_test_probe\n");
    assert!(
        counted.contains("counter packets 0 bytes 0"),
        "packets of the guests reached the host: {counted}"
    );
    assert_eq!(
        between(a2_text, "instance/id").trim(),
        a2.body["uid"].as_str().unwrap(),
        "a2 reads its own metadata through its gateway"
    );
    let b1_console = console_says(
        c,
        "b1",
        "b1",
        &[
            "address 10.90.0.11/24",
            "ping 10.90.0.10 unreachable",
            "tcp 10.90.0.10:7 unreachable",
            "ping 10.90.0.1 REACHABLE",
        ],
    )
    .await;
    let b1_text = b1_console.as_str();
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
    assert!(names_in("/var/run/netns", "stratus-local-").is_empty());
    for prefix in ["sbr", "svh", "stp"] {
        assert!(
            names_in("/sys/class/net", prefix).is_empty(),
            "{prefix}* links are left: {:?}",
            names_in("/sys/class/net", prefix)
        );
    }
    let dnsmasq = dnsmasq_of(&region.dir.path().display().to_string());
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

/// Runs `ip ARGS`, panicking with its error when it fails.
fn ip(args: &[&str]) {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Output of `ip ARGS` inside namespace `ns`.
fn ip_in(ns: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two hosts on one machine: a namespace each, joined to the machine's own namespace (the
/// outside, where the control plane listens) by a veth pair on the underlay bridge
/// `stulbr` (10.250.0.0/24; the outside is .1 and .100, host N is .1N).
struct TwoHosts {
    /// The agents' data directories; whatever of theirs outlives the test is killed.
    agents: tempfile::TempDir,
}

const UNDERLAY_HOSTS: [(&str, &str); 2] = [("h1", "10.250.0.11"), ("h2", "10.250.0.12")];

impl TwoHosts {
    fn namespace(host: &str) -> String {
        format!("stratus-test-{host}")
    }

    fn build() -> Self {
        Self::tear_down();
        ip(&["link", "add", "stulbr", "type", "bridge"]);
        ip(&["addr", "add", "10.250.0.1/24", "dev", "stulbr"]);
        ip(&["addr", "add", "10.250.0.100/32", "dev", "stulbr"]);
        ip(&["link", "set", "stulbr", "up"]);
        for (host, address) in UNDERLAY_HOSTS {
            let ns = Self::namespace(host);
            let outside = format!("stul{host}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "ul0", "netns", &ns,
            ]);
            ip(&["link", "set", &outside, "master", "stulbr", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "ul0",
            ]);
            ip(&["-n", &ns, "link", "set", "ul0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", "10.250.0.1"]);
        }
        TwoHosts {
            agents: tempfile::tempdir().unwrap(),
        }
    }

    fn tear_down() {
        for (host, _) in UNDERLAY_HOSTS {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &Self::namespace(host)])
                .stderr(std::process::Stdio::null())
                .status();
            for ns in names_in("/var/run/netns", &format!("stratus-{host}-")) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &ns])
                    .status();
            }
        }
        for link in ["stulbr", "stulh1", "stulh2"] {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", link])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::process::Command::new("ip")
            .args(["route", "flush", "10.251.0.0/24"])
            .status();
    }

    /// `stratus agent` with the QEMU driver and bridged networking inside `host`'s namespace.
    fn agent(
        host: &str,
        address: &str,
        dir: &Path,
        control_plane: &str,
        credential: &Path,
    ) -> tokio::process::Child {
        let mut config = qemu_config();
        config.host.networking = "bridge".into();
        config.host.underlay_address = address.into();
        let dir = dir.join(host);
        std::fs::create_dir_all(&dir).unwrap();
        let net = format!("--net=/var/run/netns/{}", Self::namespace(host));
        spawn_agent(
            host,
            "qemu",
            &dir,
            &[control_plane],
            credential,
            &config,
            &["nsenter", &net, "--"],
        )
    }
}

impl TwoHosts {
    /// A region on the outside (10.250.0.1, no host of its own) with `config`, and both hosts'
    /// agents, returned once both have registered.
    async fn region(&self, mut config: Config) -> (TestRegion, Vec<tokio::process::Child>) {
        config.host.enabled = false;
        let region = TestRegion::listening(config, "10.250.0.1:0").await;
        let control_plane = region.client.base.clone();
        let credential = region.dir.path().join("host-credential");
        let agents = UNDERLAY_HOSTS
            .iter()
            .map(|(host, address)| {
                Self::agent(
                    host,
                    address,
                    self.agents.path(),
                    &control_plane,
                    &credential,
                )
            })
            .collect();
        for (host, _) in UNDERLAY_HOSTS {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while region.client.get(&format!("{HOSTS}/{host}")).await.status != StatusCode::OK {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{host} never registered"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        (region, agents)
    }

    /// Lets placement use `host` only.
    async fn only_on(c: &Client, host: &str) {
        for (other, _) in UNDERLAY_HOSTS {
            let verb = if other == host { "uncordon" } else { "cordon" };
            let reply = c.post(&format!("{HOSTS}/{other}:{verb}"), json!({})).await;
            assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        }
    }
}

const HOSTS: &str = "/v1/regions/local-1/zones/local-1a/hosts";

impl Drop for TwoHosts {
    fn drop(&mut self) {
        kill_processes_mentioning(&self.agents.path().display().to_string());
        Self::tear_down();
    }
}

/// Waits for guest `id` to be ready and checks that its console shows every one of `lines`
/// (`who` names it in the failure); returns the console.
async fn console_says(c: &Client, id: &str, who: &str, lines: &[&str]) -> String {
    let console = c.wait_console(id, "stratus-guest: ready", BOOT).await;
    let text = console["contents"].as_str().unwrap().to_owned();
    for line in lines {
        assert!(text.contains(line), "{who} should print {line:?}:\n{text}");
    }
    text
}

/// The command lines of running dnsmasq processes that mention `needle`.
fn dnsmasq_of(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("dnsmasq") && c.contains(needle))
        .collect()
}

/// Routes, links and nftables rules of `host` and of its networks' namespaces.
fn network_diagnostics(host: &str) -> String {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap();
        format!(
            "$ {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let mut text = String::new();
    let mut namespaces = vec![TwoHosts::namespace(host)];
    namespaces.extend(names_in("/var/run/netns", &format!("stratus-{host}-")));
    for ns in namespaces {
        for args in [
            vec!["ip", "-n", &ns, "-br", "addr"],
            vec!["ip", "-n", &ns, "route"],
            vec!["ip", "netns", "exec", &ns, "nft", "list", "ruleset"],
        ] {
            text.push_str(&run(&args));
        }
    }
    text.push_str(&run(&["ip", "route"]));
    text
}

/// Connects to `target` from this (the outside) namespace, retrying for `within`.
async fn reachable_from_outside(target: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(target),
        )
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Two hosts, each an agent in a namespace of its own with its own bridges, taps and VXLAN
/// devices, joined by a veth underlay: guests of one network meet across hosts (ping, TCP), a
/// network with the same CIDR does not, a guest reaches the outside through NAT but not the
/// control plane, a forged source gets nothing through, an EXTERNAL address reaches its guest
/// from outside by 1:1 NAT; an agent restart keeps all of it working without duplicating
/// anything, and deleting the guests leaves nothing of their networks on either host.
#[tokio::test]
async fn networks_span_hosts_through_the_overlay_and_reach_out_through_nat() {
    let _network_tests = NETWORK_TESTS.lock().await;
    let two_hosts = TwoHosts::build();
    let outside = tokio::net::TcpListener::bind("10.250.0.100:0")
        .await
        .unwrap();
    let outside_port = outside.local_addr().unwrap().port();
    tokio::spawn(async move { while outside.accept().await.is_ok() {} });

    let mut config = qemu_config();
    config.networks.external_cidr = "10.251.0.0/24".into();
    let (region, mut agents) = two_hosts.region(config).await;
    let c = &region.client;
    let control_plane = c.base.clone();
    let api_port = control_plane.rsplit(':').next().unwrap().to_owned();
    let credential = region.dir.path().join("host-credential");
    let agents_dir = &two_hosts.agents;
    let hosts = HOSTS;
    let only_on = |host: &'static str| TwoHosts::only_on(c, host);

    let project = "/v1/regions/local-1/projects/default/compute";
    for id in ["net-a", "net-b"] {
        let made = c
            .post(
                &format!("{project}/networks"),
                json!({"id": id, "cidr": "10.90.0.0/24"}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    }
    let external = c
        .post(
            &format!("{project}/addresses"),
            json!({"id": "a1-public", "addressType": "EXTERNAL"}),
        )
        .await;
    assert_eq!(external.status, StatusCode::CREATED, "{:#}", external.body);
    let external_ip = external.body["ipAddress"].as_str().unwrap().to_owned();

    let guest = |id: &str, network: &str, ip: &str, probes: Vec<(&str, String)>| {
        let mut body = guest_body(id, "alice:ssh-ed25519 AAAA alice");
        body["nics"] =
            json!([{"network": format!("{project}/networks/{network}"), "ipv4Address": ip}]);
        for (key, value) in probes {
            body["instanceMetadata"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": key, "value": value}));
        }
        body
    };
    only_on("h1").await;
    let mut a1_body = guest("a1", "net-a", "10.90.0.10", vec![]);
    a1_body["nics"][0]["externalAddress"] = json!(format!("{project}/addresses/a1-public"));
    let a1 = c.post(INSTANCES, a1_body).await;
    assert_eq!(a1.status, StatusCode::CREATED, "{:#}", a1.body);
    assert_eq!(
        a1.body["nics"][0]["externalIpv4Address"],
        json!(external_ip)
    );
    let taken = c
        .post(INSTANCES, {
            let mut body = guest("a9", "net-a", "10.90.0.19", vec![]);
            body["nics"][0]["externalAddress"] = json!(format!("{project}/addresses/a1-public"));
            body
        })
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:#}", taken.body);
    assert!(
        taken.message().contains("nics[0].externalAddress"),
        "{:#}",
        taken.body
    );
    c.wait_console("a1", "stratus-guest: ready", BOOT).await;

    only_on("h2").await;
    let a2 = c
        .post(
            INSTANCES,
            guest(
                "a2",
                "net-a",
                "10.90.0.11",
                vec![
                    ("probe-ping", "10.90.0.10".into()),
                    (
                        "probe-tcp",
                        format!("10.90.0.10:7,10.250.0.100:{outside_port},10.250.0.1:{api_port}"),
                    ),
                    ("probe-spoof", "10.90.0.12>10.90.0.10".into()),
                ],
            ),
        )
        .await;
    assert_eq!(a2.status, StatusCode::CREATED, "{:#}", a2.body);
    let b1 = c
        .post(
            INSTANCES,
            guest(
                "b1",
                "net-b",
                "10.90.0.11",
                vec![
                    ("probe-ping", "10.90.0.10".into()),
                    ("probe-tcp", "10.90.0.10:7".into()),
                ],
            ),
        )
        .await;
    assert_eq!(b1.status, StatusCode::CREATED, "{:#}", b1.body);
    for (host, ids) in [("h1", vec!["a1"]), ("h2", vec!["a2", "b1"])] {
        let got = c.get(&format!("{hosts}/{host}")).await;
        let on: Vec<&str> = got.body["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(on, ids, "{:#}", got.body);
    }

    console_says(
        c,
        "a2",
        "a2 (on h2)",
        &[
            "address 10.90.0.11/24",
            "ping 10.90.0.10 REACHABLE",
            "tcp 10.90.0.10:7 REACHABLE",
            &format!("tcp 10.250.0.100:{outside_port} REACHABLE"),
            &format!("tcp 10.250.0.1:{api_port} unreachable"),
            "spoofed ping from 10.90.0.12 to 10.90.0.10 unreachable",
        ],
    )
    .await;
    console_says(
        c,
        "b1",
        "b1 (net-b, same CIDR)",
        &[
            "ping 10.90.0.10 unreachable",
            "tcp 10.90.0.10:7 unreachable",
        ],
    )
    .await;

    // The outside reaches a1 through its EXTERNAL address, routed to its host as an upstream
    // router would.
    ip(&[
        "route",
        "replace",
        &format!("{external_ip}/32"),
        "via",
        "10.250.0.11",
    ]);
    let a1_public = format!("{external_ip}:7");
    assert!(
        reachable_from_outside(&a1_public, Duration::from_secs(20)).await,
        "{a1_public} should reach a1's port 7\n{}",
        network_diagnostics("h1")
    );

    // h1's agent restarts: everything keeps working and nothing is duplicated.
    agents[0].kill().await.unwrap();
    agents[0] = TwoHosts::agent(
        "h1",
        "10.250.0.11",
        agents_dir.path(),
        &control_plane,
        &credential,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        reachable_from_outside(&a1_public, Duration::from_secs(20)).await,
        "{a1_public} should still reach a1 after h1's agent restarted"
    );
    let h1 = TwoHosts::namespace("h1");
    let links = ip_in(&h1, &["-o", "link", "show"]);
    for link in ["sbr", "svx", "svh", "sup"] {
        assert_eq!(
            links.matches(&format!(": {link}")).count(),
            1,
            "h1 should have one {link}* link:\n{links}"
        );
    }
    let fdb = std::process::Command::new("ip")
        .args(["netns", "exec", &h1, "bridge", "fdb", "show", "dev"])
        .arg(
            links
                .split(": ")
                .find(|l| l.starts_with("svx"))
                .unwrap()
                .split('@')
                .next()
                .unwrap(),
        )
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
    let a2_mac = a2.body["nics"][0]["macAddress"].as_str().unwrap();
    assert_eq!(
        fdb.lines()
            .filter(|l| l.contains(" dst 10.250.0.12"))
            .count(),
        2,
        "h1 sends a2's MAC and broadcasts of net-a to h2, once each:\n{fdb}"
    );
    assert!(fdb.contains(a2_mac), "{fdb}");
    let dnsmasq = dnsmasq_of(&format!("{}/h1/", agents_dir.path().display()));
    assert_eq!(
        dnsmasq.len(),
        1,
        "h1 runs one dnsmasq for net-a: {dnsmasq:?}"
    );

    for id in ["a1", "a2", "b1"] {
        c.delete(&format!("{INSTANCES}/{id}")).await;
    }
    for id in ["a1", "a2", "b1"] {
        c.wait_gone(id, Duration::from_secs(60)).await;
    }
    for (host, _) in UNDERLAY_HOSTS {
        let ns = TwoHosts::namespace(host);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let links = ip_in(&ns, &["-o", "link", "show"]);
            let left: Vec<&str> = ["sbr", "svx", "svh", "sup", "stp"]
                .into_iter()
                .filter(|p| links.contains(&format!(": {p}")))
                .collect();
            let namespaces = names_in("/var/run/netns", &format!("stratus-{host}-"));
            let dnsmasq = dnsmasq_of(&format!("{}/{host}/", agents_dir.path().display()));
            if left.is_empty() && namespaces.is_empty() && dnsmasq.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{host} keeps {left:?} links, namespaces {namespaces:?} and dnsmasq {dnsmasq:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(agents);
    region.stop().await;
}

/// A stock-built Debian cloud image on a bridged network: it gets its address by DHCP and its
/// key from the metadata service through cloud-init, and `stratus instances ssh` reaches it
/// from the host at its EXTERNAL address and runs commands in it as the default user.
#[tokio::test]
async fn a_cloud_init_guest_answers_stratus_instances_ssh_at_its_external_address() {
    let _network_tests = NETWORK_TESTS.lock().await;
    let image = debian_image();
    let mut config = qemu_config();
    config.host.name = "ci-host".into();
    config.host.networking = "bridge".into();
    config.networks.external_cidr = "10.252.0.0/24".into();
    let catalog = config.catalog.as_mut().unwrap();
    catalog.images.push(image);
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());

    let compute = "/v1/regions/local-1/projects/default/compute";
    let network = c
        .post(
            &format!("{compute}/networks"),
            json!({"id": "ci-net", "cidr": "10.93.0.0/24"}),
        )
        .await;
    assert_eq!(network.status, StatusCode::CREATED, "{:#}", network.body);
    let external = c
        .post(
            &format!("{compute}/addresses"),
            json!({"id": "deb-public", "addressType": "EXTERNAL"}),
        )
        .await;
    assert_eq!(external.status, StatusCode::CREATED, "{:#}", external.body);

    let shell_home = tempfile::tempdir().unwrap();
    let stratus = |args: Vec<String>| {
        let home = shell_home.path().to_owned();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
                .args(&args)
                .env("XDG_CONFIG_HOME", &home)
                .env_remove("STRATUS_PROFILE")
                .env_remove("STRATUS_PROJECT")
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let admin_key = region.dir.path().join("admin-api-key");
    let login = stratus(vec![
        "login".into(),
        "--endpoint".into(),
        region.endpoint(),
        "--api-key-file".into(),
        admin_key.display().to_string(),
    ])
    .await;
    assert_eq!(login.0, Some(0), "{login:?}");
    let pubkey_file = key.with_extension("pub").display().to_string();
    let created = stratus(
        [
            "instances",
            "create",
            "deb",
            "--type",
            "e2-small",
            "--image",
            "debian-12",
            "--disk-size",
            "3",
            "--network",
            "ci-net",
            "--external-address",
            "deb-public",
            "--ssh-key",
            &pubkey_file,
            "--ssh-user",
            "debian",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(created.0, Some(0), "{created:?}");
    let started = std::time::Instant::now();
    // cloud-init prints the keys it installed and its final message on the console.
    c.wait_console("deb", "Cloud-init v.", Duration::from_secs(300))
        .await;
    let cloud_init_at = started.elapsed();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut last = (None, String::new(), String::new());
    while std::time::Instant::now() < deadline {
        last = stratus(
            [
                "instances",
                "ssh",
                "deb",
                "-i",
                key.to_str().unwrap(),
                "--",
                "echo hello-from-$(hostname) as $(id -un); sudo -n true && echo sudo-works",
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        if last.0 == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if last.0 != Some(0) {
        if std::env::var("STRATUS_TEST_LINGER").is_ok() {
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
        let console = c.get(&format!("{INSTANCES}/deb/serialPortOutput")).await;
        panic!(
            "ssh never worked: {last:?}\nconsole:\n{}\n{}",
            console.body["contents"].as_str().unwrap_or_default(),
            network_diagnostics("ci-host")
        );
    }
    assert!(last.1.contains("hello-from-deb as debian"), "{last:?}");
    assert!(last.1.contains("sudo-works"), "{last:?}");
    eprintln!(
        "create to cloud-init on the console: {:.1} s; to ssh working: {:.1} s",
        cloud_init_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    c.delete(&format!("{INSTANCES}/deb")).await;
    c.wait_gone("deb", Duration::from_secs(60)).await;
    region.stop().await;
}

/// `[images] build = ["debian-12"]`: the region registers the image at once and builds it from
/// Debian's packages in the background, its status saying how far the build is, until it is
/// READY to boot; an image it cannot build stops the start with a message naming the setting.
#[tokio::test]
async fn the_region_builds_debian_12_in_the_background_showing_its_progress() {
    let mut config = fast_config();
    config.images.build = vec!["debian-11".into()];
    let refused =
        stratus::Region::start(tempfile::tempdir().unwrap().path(), "127.0.0.1:0", config)
            .await
            .err()
            .expect("an unknown image to build is refused");
    assert!(
        refused.to_string().contains("images.build") && refused.to_string().contains("debian-12"),
        "{refused:#}"
    );

    let mut config = fast_config();
    config.images.build = vec!["debian-12".into()];
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let image = "/v1/regions/local-1/compute/images/debian-12";
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let ready = loop {
        let got = c.get(image).await;
        assert_eq!(got.status, StatusCode::OK, "{:#}", got.body);
        let status = got.body["status"].as_str().unwrap().to_owned();
        let message = got.body["statusMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen.last() != Some(&(status.clone(), message.clone())) {
            seen.push((status.clone(), message));
        }
        match status.as_str() {
            "READY" => break got.body,
            "FAILED" => panic!("the build failed: {seen:#?}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never READY: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        seen.iter()
            .any(|(s, m)| s == "PENDING" && m.starts_with("building from Debian's packages: ")),
        "the build showed its progress: {seen:#?}"
    );
    assert!(
        ready["sizeBytes"].as_u64().unwrap() > 100 << 20,
        "{ready:#}"
    );
    assert_eq!(ready["minDiskGb"], 2, "{ready:#}");
    region.stop().await;
}

/// A benchmark, not a test (run it with `-- --ignored --nocapture`): TCP throughput and ping
/// latency between `debian-12` guests of one network, on one host and across two hosts (the
/// overlay), measured by the guests themselves from their user-data and printed as a table.
#[tokio::test]
#[ignore = "a benchmark: cargo test -p stratus --test api qemu::bench_ -- --ignored --nocapture"]
async fn bench_guest_network_on_one_host_and_across_hosts() {
    let _network_tests = NETWORK_TESTS.lock().await;
    let image = debian_image();
    let two_hosts = TwoHosts::build();
    let mut config = qemu_config();
    config.catalog.as_mut().unwrap().images.push(image);
    let (region, _agents) = two_hosts.region(config).await;
    let c = &region.client;
    let only_on = |host: &'static str| TwoHosts::only_on(c, host);
    let compute = "/v1/regions/local-1/projects/default/compute";
    c.post(
        &format!("{compute}/networks"),
        json!({"id": "bench", "cidr": "10.94.0.0/24"}),
    )
    .await;
    // Sinks read what a connection sends and answer with the byte count.
    let sink = "#cloud-config\nruncmd:\n  - [python3, -c, \"import socket\\ns=socket.socket()\\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\\ns.bind(('',5001))\\ns.listen()\\nwhile True:\\n  c,_=s.accept()\\n  n=0\\n  while (b:=c.recv(1<<16)):\\n    n+=len(b)\\n  c.sendall(str(n).encode())\\n  c.close()\"]\n";
    let probe = r#"#cloud-config
write_files:
  - path: /usr/local/bin/net-bench
    permissions: "0755"
    content: |
      #!/usr/bin/python3
      import socket, subprocess, sys, time
      for name, ip in (("one host", "10.94.0.11"), ("across hosts", "10.94.0.12")):
          for _ in range(120):
              try:
                  socket.create_connection((ip, 5001), timeout=2).close(); break
              except OSError:
                  time.sleep(1)
          ping = subprocess.run(["ping", "-c", "20", "-i", "0.2", "-q", ip], capture_output=True, text=True).stdout
          rtt = ping.strip().splitlines()[-1].split("=")[1].split("/")[1]
          data = b"x" * (1 << 16); total = 64 << 20
          start = time.monotonic()
          c = socket.create_connection((ip, 5001)); sent = 0
          while sent < total:
              c.sendall(data); sent += len(data)
          c.shutdown(socket.SHUT_WR); got = int(c.recv(64)); took = time.monotonic() - start
          print(f"net-bench: {name}: {got * 8 / took / 1e6:.0f} Mbit/s, rtt {rtt} ms", flush=True)
runcmd:
  - [sh, -c, "/usr/local/bin/net-bench > /dev/ttyS0 2>&1"]
"#;
    let guest = |id: &str, ip: &str, user_data: &str| {
        json!({
            "id": id,
            "type": TYPE_SMALL,
            "disks": [{"boot": true, "source": "/v1/regions/local-1/compute/images/debian-12", "sizeGb": 3}],
            "nics": [{"network": format!("{compute}/networks/bench"), "ipv4Address": ip}],
            "instanceMetadata": [{"key": "user-data", "value": user_data}],
        })
    };
    only_on("h1").await;
    for (id, ip, user_data) in [("g1", "10.94.0.10", probe), ("g2", "10.94.0.11", sink)] {
        let made = c.post(INSTANCES, guest(id, ip, user_data)).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    }
    only_on("h2").await;
    let made = c.post(INSTANCES, guest("g3", "10.94.0.12", sink)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    let console = c
        .wait_console("g1", "net-bench: across hosts", Duration::from_secs(900))
        .await;
    let text = console["contents"].as_str().unwrap();
    println!("\nguest-to-guest, debian-12 guests under the region's accelerator, one network:");
    println!("{:<14} {:>14} {:>12}", "path", "throughput", "ping rtt");
    let mut rates = Vec::new();
    for line in text.lines().filter_map(|l| l.split("net-bench: ").nth(1)) {
        let (path, rest) = line.split_once(": ").unwrap();
        let (rate, rtt) = rest.split_once(", rtt ").unwrap();
        println!("{path:<14} {rate:>14} {rtt:>12}");
        rates.push(
            rate.split_whitespace()
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap(),
        );
    }
    if let [one_host, across] = rates[..] {
        println!(
            "across hosts / one host: {:.2}x throughput",
            across / one_host
        );
    }
    region.stop().await;
}
