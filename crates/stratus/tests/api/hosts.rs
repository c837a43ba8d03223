//! The region's hosts as its operators steer them: a second host joins through `stratus agent`,
//! a cordoned host receives no new instances, a drained one lists what is left on it until
//! nothing is, and nobody but an operator sees any of it.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const HOSTS: &str = "/v1/regions/local-1/zones/local-1a/hosts";

fn micro(id: &str) -> Value {
    json!({"id": id, "type": TYPE_MICRO})
}

/// The host names the instances of `host`'s view sit on.
fn instance_ids(host: &Value) -> Vec<String> {
    host["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no instances listed: {host:#}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_host_takes_nothing_new_and_a_drained_one_lists_what_remains() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let agent_dir = tempfile::tempdir().unwrap();
    let _agent = spawn_sim_agent(
        "host-b",
        agent_dir.path(),
        &[&region.endpoint()],
        &region.dir.path().join("host-credential"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let hosts = loop {
        let hosts = c.get(HOSTS).await;
        assert_eq!(hosts.status, StatusCode::OK, "{:#}", hosts.body);
        if hosts.body["hosts"].as_array().unwrap().len() == 2 {
            break hosts.body;
        }
        assert!(
            Instant::now() < deadline,
            "host-b never joined: {:#}",
            hosts.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let b = &hosts["hosts"][0];
    assert_eq!(b["id"], "host-b", "{hosts:#}");
    assert_eq!(
        (&b["driver"], &b["status"], &b["scheduling"]),
        (&json!("sim"), &json!("UP"), &json!("SCHEDULABLE"))
    );
    assert_eq!(b["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(b["capacity"]["vcpus"], 256);
    assert_eq!(b["selfLink"], format!("{HOSTS}/host-b"));

    // With the local host cordoned, every new instance lands on host-b.
    let cordoned = c.post(&format!("{HOSTS}/local:cordon"), json!({})).await;
    assert_eq!(cordoned.status, StatusCode::OK, "{:#}", cordoned.body);
    assert_eq!(cordoned.body["scheduling"], "CORDONED");
    for n in 0..4 {
        let created = c.post(INSTANCES, micro(&format!("b-{n}"))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    }
    let local = c.get(&format!("{HOSTS}/local")).await.body;
    assert!(instance_ids(&local).is_empty(), "{local:#}");
    let on_b = c.get(&format!("{HOSTS}/host-b")).await.body;
    assert_eq!(
        instance_ids(&on_b),
        ["b-0", "b-1", "b-2", "b-3"],
        "{on_b:#}"
    );
    assert_eq!(on_b["allocated"]["vcpus"], 4);
    assert_eq!(on_b["instanceCount"], 4);

    // Draining host-b as well leaves nowhere to place, and says so.
    let drained = c.post(&format!("{HOSTS}/host-b:drain"), json!({})).await;
    assert_eq!(drained.status, StatusCode::OK, "{:#}", drained.body);
    assert_eq!(drained.body["scheduling"], "DRAINING");
    assert_eq!(instance_ids(&drained.body).len(), 4, "{:#}", drained.body);
    let refused = c.post(INSTANCES, micro("nowhere")).await;
    refused.assert_error(409);
    assert!(
        refused.message().contains("no schedulable host"),
        "{}",
        refused.message()
    );
    // What remains goes away; the host then shows as drained.
    for n in 0..4 {
        c.delete(&format!("{INSTANCES}/b-{n}")).await;
    }
    for n in 0..4 {
        c.wait_gone(&format!("b-{n}"), Duration::from_secs(20))
            .await;
    }
    let empty = c.get(&format!("{HOSTS}/host-b")).await.body;
    assert_eq!(empty["scheduling"], "DRAINED", "{empty:#}");
    assert!(instance_ids(&empty).is_empty());

    // Uncordoned, the local host takes instances again.
    let back = c.post(&format!("{HOSTS}/local:uncordon"), json!({})).await;
    assert_eq!(back.body["scheduling"], "SCHEDULABLE", "{:#}", back.body);
    c.post(INSTANCES, micro("home")).await;
    let local = c.get(&format!("{HOSTS}/local")).await.body;
    assert_eq!(instance_ids(&local), ["home"], "{local:#}");
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_for_operators_only_and_bad_names_are_refused() {
    let region = TestRegion::start().await;
    let admin = &region.client;
    for roles in [&["owner"][..], &["admin"], &["member"]] {
        let mut user = admin.clone();
        user.token = Some(region.sign(&region.user_claims("default", roles)));
        let listed = user.get(HOSTS).await;
        listed.assert_error(403);
        assert!(
            listed.message().contains("compute.hosts.list"),
            "{}",
            listed.message()
        );
        user.get(&format!("{HOSTS}/local")).await.assert_error(403);
        user.post(&format!("{HOSTS}/local:cordon"), json!({}))
            .await
            .assert_error(403);
    }
    admin
        .get("/v1/regions/local-1/zones/nowhere/hosts")
        .await
        .assert_error(404);
    admin
        .get(&format!("{HOSTS}/no-such-host"))
        .await
        .assert_error(404);
    admin
        .post(&format!("{HOSTS}/local:reboot"), json!({}))
        .await
        .assert_error(404);
    // A host registers only under a name that can appear in those paths.
    let credential = std::fs::read_to_string(region.dir.path().join("host-credential")).unwrap();
    let mut agent = Client::anonymous(&region.endpoint());
    agent.token = Some(credential.trim().to_owned());
    let bad = agent
        .post(
            "/internal/v1/hosts",
            json!({"name": "bad/name", "zone": "local-1a", "driver": "sim", "vcpus": 1,
                   "memory_mb": 1024, "gpus": []}),
        )
        .await;
    bad.assert_error(400);
    assert_eq!(bad.field(), "name");
    region.stop().await;
}

/// An agent's poll as the HTTP protocol carries it: `since` and `epoch` from the last answer.
async fn poll(region: &TestRegion, host: &str, since: &Value, wait_ms: u64) -> Value {
    let credential = std::fs::read_to_string(region.dir.path().join("host-credential")).unwrap();
    let reply = reqwest::Client::new()
        .get(format!(
            "{}/internal/v1/hosts/{host}/assignments",
            region.client.base
        ))
        .query(&[
            ("since", since["revision"].as_u64().unwrap_or(0)),
            ("epoch", since["epoch"].as_u64().unwrap_or(0)),
            ("waitMs", wait_ms),
        ])
        .bearer_auth(credential.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    reply.json().await.unwrap()
}

/// The id of the region's one host.
async fn only_host(region: &TestRegion) -> String {
    let app = &region.region.as_ref().unwrap().app;
    stratus_store::Store::list_hosts(app.store.as_ref())
        .await
        .unwrap()[0]
        .id
        .to_string()
}

fn polled_ids(batch: &Value) -> Vec<String> {
    let mut ids: Vec<String> = batch["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["spec"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A host's agent that names the last answer it took in gets only the instances written
/// since, and those that left the host; an agent of another epoch (a restarted control
/// plane) or a new one gets the whole list. What a change costs a host does not grow with the
/// instances it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_poll_carries_what_changed_since_the_last_answer() {
    let region = TestRegion::start().await;
    let c = &region.client;
    for id in ["a", "b", "c"] {
        c.create_instance(id).await;
    }
    for id in ["a", "b", "c"] {
        c.wait_status(id, "RUNNING", Duration::from_secs(20)).await;
    }
    let host = only_host(&region).await;

    let whole = poll(&region, &host, &Value::Null, 0).await;
    assert_eq!(whole["complete"], true, "{whole:#}");
    assert_eq!(polled_ids(&whole), ["a", "b", "c"]);
    let uid_of_c = whole["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["spec"]["id"] == "c")
        .unwrap()["spec"]["uid"]
        .clone();
    let quiet = poll(&region, &host, &whole, 0).await;
    assert_eq!(
        (&quiet["complete"], polled_ids(&quiet), &quiet["removed"]),
        (&json!(false), vec![], &json!([])),
        "{quiet:#}"
    );

    // A stop writes b several times; a poll names b alone.
    assert_eq!(c.action("b", "stop").await.status, StatusCode::OK);
    c.wait_status("b", "TERMINATED", Duration::from_secs(20))
        .await;
    let stopped = poll(&region, &host, &quiet, 5000).await;
    assert_eq!(stopped["complete"], false, "{stopped:#}");
    assert_eq!(polled_ids(&stopped), ["b"], "{stopped:#}");
    assert_eq!(stopped["assignments"][0]["desired"], "STOPPED");

    // A deleted instance leaves the host: named as removed, not listed.
    assert_eq!(
        c.delete(&format!("{INSTANCES}/c")).await.status,
        StatusCode::NO_CONTENT
    );
    c.wait_gone("c", Duration::from_secs(20)).await;
    let deleted = poll(&region, &host, &stopped, 5000).await;
    assert_eq!(deleted["complete"], false, "{deleted:#}");
    assert_eq!(deleted["removed"], json!([uid_of_c]), "{deleted:#}");
    assert!(!polled_ids(&deleted).contains(&"c".to_owned()));

    // Another epoch's revision means nothing here: the whole list.
    let foreign =
        json!({"revision": deleted["revision"], "epoch": deleted["epoch"].as_u64().unwrap() ^ 2});
    let relisted = poll(&region, &host, &foreign, 0).await;
    assert_eq!(relisted["complete"], true, "{relisted:#}");
    assert_eq!(polled_ids(&relisted), ["a", "b"]);
    region.stop().await;
}

/// What a host is told to plumb a NIC with is that of the network the instance is on now: a
/// network deleted and made again under its name, with another range, plumbs the instances
/// made on it with its own range, however recently the old one was sent to the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_made_again_under_its_name_is_plumbed_as_itself() {
    const NETWORKS: &str = "/v1/regions/local-1/projects/default/compute/networks";
    let region = TestRegion::start().await;
    let c = &region.client;
    let host = only_host(&region).await;
    let plumbed_cidr = async |id: &str| {
        let whole = poll(&region, &host, &Value::Null, 0).await;
        let assignment = whole["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["spec"]["id"] == id)
            .unwrap_or_else(|| panic!("{id} is on the host: {whole:#}"))
            .clone();
        assignment["spec"]["nics"][0]["cidr"].clone()
    };
    for (cidr, instance) in [("10.7.0.0/24", "first"), ("10.8.0.0/24", "second")] {
        let made = c.post(NETWORKS, json!({"id": "blue", "cidr": cidr})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        let created = c
            .post(
                INSTANCES,
                json!({"id": instance, "type": TYPE_MICRO,
                       "nics": [{"network": format!("{NETWORKS}/blue")}]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        c.wait_status(instance, "RUNNING", Duration::from_secs(20))
            .await;
        assert_eq!(plumbed_cidr(instance).await, json!(cidr));
        assert_eq!(
            c.delete(&format!("{INSTANCES}/{instance}")).await.status,
            StatusCode::NO_CONTENT
        );
        c.wait_gone(instance, Duration::from_secs(20)).await;
        let deleted = c.delete(&format!("{NETWORKS}/blue")).await;
        assert!(deleted.status.is_success(), "{:?}", deleted.body);
    }
    region.stop().await;
}
