//! Bare metal end to end: servers that are libvirt domains under TCG, their BMC the Redfish
//! emulator `sushy-emulator` with basic auth on (`scripts/baremetal-lab.sh`), deployed through
//! virtual media with the deploy ramdisk `scripts/build-deploy-ramdisk.sh` makes from Debian's
//! packages, running the `debian-12` cloud image.

use crate::qemu::{NETWORK_TESTS, built_image, debian_image, qemu_config};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratus_core::catalog::Catalog;

const SERVERS: &str = "/v1/regions/local-1/projects/default/infrastructure/servers";
const TYPE_BM: &str = "/v1/regions/local-1/zones/local-1a/instance-types/bm1-small";
const DEBIAN: &str = "/v1/regions/local-1/compute/images/debian-12";
const BMC_USER: &str = "stratus-bmc";
const BMC_PASSWORD: &str = "Bmc-pa55word-7f3e";

fn lab(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/baremetal-lab.sh"))
        .args(args)
        .output()
        .expect("running scripts/baremetal-lab.sh");
    assert!(
        output.status.success(),
        "scripts/baremetal-lab.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn virsh(args: &[&str]) -> String {
    let output = std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("running virsh");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The emulator and its domains, removed when dropped.
struct Lab {
    dir: tempfile::TempDir,
    port: u16,
    domains: Vec<(String, String)>,
}

impl Lab {
    fn start() -> Self {
        lab(&["install"]);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let lab = Self {
            dir,
            port,
            domains: Vec::new(),
        };
        lab.start_emulator();
        lab
    }

    fn emulator_dir(&self) -> PathBuf {
        self.dir.path().join("emulator")
    }

    fn start_emulator(&self) {
        std::fs::create_dir_all(self.emulator_dir()).unwrap();
        lab(&[
            "emulator",
            &self.port.to_string(),
            BMC_USER,
            BMC_PASSWORD,
            self.emulator_dir().to_str().unwrap(),
        ]);
    }

    fn stop_emulator(&self) {
        kill_processes_mentioning(&self.emulator_dir().display().to_string());
    }

    fn consoles(&self) -> PathBuf {
        self.dir.path().join("consoles")
    }

    /// Defines a server `name` whose console is logged as `{name}.log`; returns its BMC
    /// address.
    fn server(&mut self, name: &str) -> String {
        std::fs::create_dir_all(self.consoles()).unwrap();
        let domain = format!("stratus-bm-{}-{name}", self.port);
        let uuid = uuid::Uuid::new_v4().to_string();
        let disk = self.dir.path().join(format!("{name}.raw"));
        lab(&[
            "server",
            &domain,
            &uuid,
            self.consoles()
                .join(format!("{name}.log"))
                .to_str()
                .unwrap(),
            disk.to_str().unwrap(),
            "3072",
            // Redfish reports whole GiB of memory (none at all below 1 GiB).
            "1024",
        ]);
        self.domains.push((domain, name.to_owned()));
        format!("http://127.0.0.1:{}/redfish/v1/Systems/{uuid}", self.port)
    }

    fn domain(&self, name: &str) -> String {
        self.domains
            .iter()
            .find(|(_, n)| n == name)
            .map(|(d, _)| d.clone())
            .unwrap()
    }

    fn disk(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.raw"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (domain, _) in &self.domains {
            let _ = std::process::Command::new("bash")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/baremetal-lab.sh"))
                .args(["remove", domain])
                .output();
        }
        self.stop_emulator();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls server `id` until `check` holds; panics after `within` with the last answer.
async fn wait_server(
    client: &Client,
    id: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let reply = client.get(&format!("{SERVERS}/{id}")).await;
        if check(&reply.body) {
            return reply.body;
        }
        last = reply.body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let logs = client
        .get(&format!("{SERVERS}/{id}/logs?pageSize=1000"))
        .await;
    panic!(
        "server {id} never got there; last seen {last:#}\nlogs {:#}",
        logs.body
    );
}

/// Whether a file's first and last MiB are all zero.
fn ends_are_zero(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).unwrap();
    let length = file.metadata().unwrap().len();
    let mut buffer = vec![0u8; 1 << 20];
    file.read_exact(&mut buffer).unwrap();
    let head = buffer.iter().all(|b| *b == 0);
    file.seek(SeekFrom::Start(length - (1 << 20))).unwrap();
    file.read_exact(&mut buffer).unwrap();
    head && buffer.iter().all(|b| *b == 0)
}

/// The BMC's own view of a server's virtual CD.
async fn media_inserted(bmc_address: &str) -> bool {
    let http = reqwest::Client::new();
    let cd = format!("{bmc_address}/VirtualMedia/Cd");
    let body: Value = http
        .get(&cd)
        .basic_auth(BMC_USER, Some(BMC_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["Inserted"].as_bool().unwrap_or(false)
}

fn bm_body(id: &str) -> Value {
    body_of_type(id, TYPE_BM)
}

/// An instance of `instance_type` from debian-12 whose OS prints its hostname and how many
/// ssh keys it took from its metadata on the serial console.
fn body_of_type(id: &str, instance_type: &str) -> Value {
    json!({
        "id": id,
        "type": instance_type,
        "disks": [{"boot": true, "source": DEBIAN, "sizeGb": 3}],
        "instanceMetadata": [
            {"key": "ssh-keys", "value": "debian:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq5ylXU1VKMqvZJvxS3wYfI0+3jnF3K8k2QFv7o5Dzx tester"},
            {"key": "user-data", "value": "#cloud-config\nruncmd:\n  - sh -c 'echo stratus-bm-metadata host=$(hostname) keys=$(wc -l < /home/debian/.ssh/authorized_keys) > /dev/ttyS0'\n"},
        ],
    })
}

/// `config` deploying the lab's servers for a region listening on `port` of loopback.
fn with_baremetal(mut config: stratus::Config, lab: &Lab, port: u16) -> stratus::Config {
    let ramdisk = built_image(
        "STRATUS_TEST_RAMDISK",
        "build-deploy-ramdisk.sh",
        "deploy-ramdisk",
    );
    config.baremetal.ramdisk = ramdisk.display().to_string();
    // The servers reach this machine's loopback at 10.0.2.2 (QEMU's user-mode network).
    config.baremetal.callback_url = format!("http://10.0.2.2:{port}");
    config.baremetal.console_logs = lab.consoles().display().to_string();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_metal_servers_are_inspected_deployed_powered_and_cleaned_through_redfish() {
    let _heavy = NETWORK_TESTS.lock().await;
    let mut lab = Lab::start();
    let bmc_a = lab.server("rack1-a");
    let bmc_b = lab.server("rack1-b");

    let port = free_port();
    let mut config = with_baremetal(fast_config(), &lab, port);
    config.baremetal.health_check_s = 2;
    // The image's OS ignores the ACPI power button (no logind): a stop ends with a hard one.
    config.baremetal.shutdown_grace_s = 5;
    config.agent.max_attempts = 2;
    let mut catalog = Catalog::builtin();
    catalog.images.push(debian_image());
    config.catalog = Some(catalog);
    let region = TestRegion::listening(config, &format!("127.0.0.1:{port}")).await;
    let client = &region.client;
    let mut seen = String::new();

    // Registration inspects each server over Redfish.
    for (id, bmc) in [("rack1-a", &bmc_a), ("rack1-b", &bmc_b)] {
        let reply = client
            .post(
                SERVERS,
                json!({"id": id, "bmcAddress": bmc, "bmcUsername": BMC_USER,
                       "bmcPassword": BMC_PASSWORD, "tags": {"rack": "1"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        assert_eq!(reply.body["provisioningState"], "registered");
        seen.push_str(&reply.body.to_string());
        let inspected = wait_server(client, id, Duration::from_secs(60), |s| {
            s["hardwareSpecs"]["cpu"]["count"].as_u64().unwrap_or(0) > 0
        })
        .await;
        assert_eq!(
            inspected["hardwareSpecs"]["cpu"]["count"], 1,
            "{inspected:#}"
        );
        assert_eq!(
            inspected["hardwareSpecs"]["ram"]["sizeGib"], 1.0,
            "{inspected:#}"
        );
        let macs = inspected["hardwareSpecs"]["nics"].as_array().unwrap();
        assert!(
            macs.len() == 1 && macs[0]["macAddress"].as_str().unwrap().len() == 17,
            "{inspected:#}"
        );
        assert_eq!(inspected["healthStatus"]["status"], "healthy");
        let valid = client
            .post(&format!("{SERVERS}/{id}:validate"), json!({}))
            .await;
        assert_eq!(valid.status, StatusCode::OK, "{:#}", valid.body);
        assert_eq!(valid.body, json!({"valid": true, "errors": []}));
        seen.push_str(&inspected.to_string());
    }

    // A wrong password fails the server, saying so.
    let wrong = client
        .post(
            SERVERS,
            json!({"id": "wrong-password", "bmcAddress": format!("http://127.0.0.1:{}", lab.port),
                   "bmcUsername": BMC_USER, "bmcPassword": "not-the-password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CREATED, "{:#}", wrong.body);
    let failed = wait_server(client, "wrong-password", Duration::from_secs(30), |s| {
        s["provisioningState"] == "failed"
    })
    .await;
    let message = failed["statusMessage"].as_str().unwrap();
    assert!(message.contains("refused the credentials"), "{failed:#}");
    assert_eq!(failed["healthStatus"]["status"], "failed");

    // Provisioning makes both ready.
    for id in ["rack1-a", "rack1-b"] {
        let job = client
            .post(&format!("{SERVERS}/{id}:provision"), json!({}))
            .await;
        assert_eq!(job.status, StatusCode::ACCEPTED, "{:#}", job.body);
        assert_eq!(job.body["status"], "queued");
    }
    for id in ["rack1-a", "rack1-b"] {
        wait_server(client, id, Duration::from_secs(60), |s| {
            s["provisioningState"] == "ready"
        })
        .await;
    }

    // A bare-metal instance: deployed from the ramdisk, booted from disk, configured by
    // cloud-init from its seed.
    let created_at = Instant::now();
    let reply = client.post(INSTANCES, bm_body("metal")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let running = client
        .wait_status("metal", "RUNNING", Duration::from_secs(480))
        .await;
    let to_running = created_at.elapsed();
    let console = client
        .wait_console("metal", "stratus-bm-metadata host=metal keys=1", BOOT_BM)
        .await;
    let to_metadata = created_at.elapsed();
    eprintln!(
        "bare metal: create -> RUNNING {:.1} s, -> OS printed its metadata {:.1} s",
        to_running.as_secs_f64(),
        to_metadata.as_secs_f64()
    );
    assert!(
        console["contents"]
            .as_str()
            .unwrap()
            .contains("stratus-deploy:"),
        "the console shows the deploy ramdisk at work"
    );
    let servers = client.get(SERVERS).await;
    let holder = servers.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["instance"]
                .as_str()
                .is_some_and(|i| i.ends_with("/metal"))
        })
        .unwrap_or_else(|| panic!("no server holds the instance: {:#}", servers.body))
        .clone();
    let metal_server = holder["id"].as_str().unwrap().to_owned();
    let other_server = if metal_server == "rack1-a" {
        "rack1-b"
    } else {
        "rack1-a"
    };
    let metal_domain = lab.domain(&metal_server);
    assert_eq!(virsh(&["domstate", &metal_domain]), "running");
    assert_eq!(running["lifecycle"]["status"], "RUNNING");

    // Suspend is not a thing a server can do.
    let suspend = client.action("metal", "suspend").await;
    suspend.assert_error(409);
    assert!(
        suspend.message().contains("bare metal"),
        "{:#}",
        suspend.body
    );

    // Power actions reach the domain.
    assert_eq!(client.action("metal", "stop").await.status, StatusCode::OK);
    client
        .wait_status("metal", "TERMINATED", Duration::from_secs(60))
        .await;
    assert_eq!(virsh(&["domstate", &metal_domain]), "shut off");
    assert_eq!(client.action("metal", "start").await.status, StatusCode::OK);
    client
        .wait_status("metal", "RUNNING", Duration::from_secs(60))
        .await;
    assert_eq!(virsh(&["domstate", &metal_domain]), "running");
    assert_eq!(
        client.action("metal", "reboot").await.status,
        StatusCode::OK
    );
    client
        .wait_status("metal", "RUNNING", Duration::from_secs(60))
        .await;
    assert_eq!(virsh(&["domstate", &metal_domain]), "running");

    // A deploy whose BMC stops answering ends TERMINATED, saying why.
    let reply = client.post(INSTANCES, bm_body("metal-2")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    wait_server(client, other_server, Duration::from_secs(120), |s| {
        s["powerState"] == "On" || s["instance"].as_str().is_some()
    })
    .await;
    let logs_path = format!("{SERVERS}/{other_server}/logs?pageSize=1000");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logs = client.get(&logs_path).await;
        if logs
            .body
            .to_string()
            .contains("powered on from the deploy ramdisk")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no deploy started: {:#}",
            logs.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    lab.stop_emulator();
    let terminated = client
        .wait_status("metal-2", "TERMINATED", Duration::from_secs(240))
        .await;
    let why = terminated["lifecycle"]["statusMessage"]
        .as_str()
        .or_else(|| terminated["statusMessage"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        why.contains("BMC"),
        "the message says the BMC failed: {terminated:#}"
    );
    lab.start_emulator();

    // Both servers are taken: no bare-metal capacity.
    let exhausted = client.post(INSTANCES, bm_body("metal-3")).await;
    exhausted.assert_error(409);
    assert_eq!(exhausted.reason(), "RESOURCE_EXHAUSTED");
    assert!(
        exhausted.message().contains("bare-metal capacity"),
        "{:#}",
        exhausted.body
    );

    // Deleting cleans the disk, ejects the media and frees the server.
    for (instance, server) in [("metal-2", other_server), ("metal", metal_server.as_str())] {
        let reply = client.delete(&format!("{INSTANCES}/{instance}")).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:#}", reply.body);
        client.wait_gone(instance, Duration::from_secs(300)).await;
        let freed = wait_server(client, server, Duration::from_secs(60), |s| {
            s["provisioningState"] == "ready" && s["instance"].is_null() && s["powerState"] == "Off"
        })
        .await;
        seen.push_str(&freed.to_string());
        assert_eq!(virsh(&["domstate", &lab.domain(server)]), "shut off");
        assert!(
            ends_are_zero(&lab.disk(server)),
            "{server}'s disk was not cleaned"
        );
        let bmc = if server == "rack1-a" { &bmc_a } else { &bmc_b };
        assert!(
            !media_inserted(bmc).await,
            "{server} still has media inserted"
        );
    }

    // The credentials never show: not in answers, not in the logs, not in the database.
    for id in ["rack1-a", "rack1-b", "wrong-password"] {
        let logs = client
            .get(&format!("{SERVERS}/{id}/logs?pageSize=1000"))
            .await;
        assert_eq!(logs.status, StatusCode::OK);
        seen.push_str(&logs.body.to_string());
    }
    let list = client.get(SERVERS).await;
    seen.push_str(&list.body.to_string());
    assert!(
        seen.contains("GET /redfish/v1/Systems"),
        "the logs show BMC calls"
    );
    assert!(!seen.contains(BMC_PASSWORD) && !seen.contains("not-the-password"));
    for entry in std::fs::read_dir(region.dir.path()).unwrap().flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(BMC_PASSWORD),
                "{} holds the BMC password",
                entry.path().display()
            );
        }
    }
    region.stop().await;
}

const BOOT_BM: Duration = Duration::from_secs(240);

/// Create → RUNNING and create → "the OS printed its metadata" for one instance.
async fn time_instance(client: &Client, body: Value) -> (f64, f64) {
    let id = body["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let reply = client.post(INSTANCES, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    client
        .wait_status(&id, "RUNNING", Duration::from_secs(480))
        .await;
    let running = started.elapsed().as_secs_f64();
    client
        .wait_console(
            &id,
            &format!("stratus-bm-metadata host={id} keys=1"),
            BOOT_BM,
        )
        .await;
    let printed = started.elapsed().as_secs_f64();
    let reply = client.delete(&format!("{INSTANCES}/{id}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:#}", reply.body);
    client.wait_gone(&id, Duration::from_secs(300)).await;
    (running, printed)
}

/// The numbers of the bare-metal closing note: the same debian-12 image as a VM and on a
/// server, one after the other on this machine.
/// `cargo test -p stratus --test api baremetal::bench_ -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints a table"]
async fn bench_bare_metal_next_to_a_vm_of_the_same_image() {
    let _heavy = NETWORK_TESTS.lock().await;
    let mut lab = Lab::start();
    let bmc = lab.server("bench");
    let port = free_port();
    let mut config = with_baremetal(qemu_config(), &lab, port);
    let mut catalog = config.catalog.clone().unwrap();
    catalog.images.push(debian_image());
    config.catalog = Some(catalog);
    let region = TestRegion::listening(config, &format!("127.0.0.1:{port}")).await;
    let client = &region.client;
    let reply = client
        .post(
            SERVERS,
            json!({"id": "bench", "bmcAddress": bmc, "bmcUsername": BMC_USER, "bmcPassword": BMC_PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    wait_server(client, "bench", Duration::from_secs(60), |s| {
        s["healthStatus"]["status"] == "healthy"
    })
    .await;
    client
        .post(&format!("{SERVERS}/bench:provision"), json!({}))
        .await;
    wait_server(client, "bench", Duration::from_secs(60), |s| {
        s["provisioningState"] == "ready"
    })
    .await;
    let vm = time_instance(client, body_of_type("vm", TYPE_MICRO)).await;
    let metal = time_instance(client, bm_body("metal")).await;
    println!("| debian-12 | create → RUNNING | create → OS printed its metadata |");
    println!("|---|---|---|");
    println!("| VM (qemu, TCG) | {:.1} s | {:.1} s |", vm.0, vm.1);
    println!(
        "| bare metal (Redfish, TCG domain) | {:.1} s | {:.1} s |",
        metal.0, metal.1
    );
    println!(
        "| ratio | {:.2}× | {:.2}× |",
        metal.0 / vm.0,
        metal.1 / vm.1
    );
    region.stop().await;
}
