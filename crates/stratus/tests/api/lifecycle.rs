//! The instance lifecycle through the API, on the simulated host.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_created_instance_has_every_field_and_runs_within_five_seconds() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let created = c
        .post(
            INSTANCES,
            json!({
                "id": "web-1",
                "displayName": "Web 1",
                "description": "front end",
                "labels": {"tier": "web"},
                "type": TYPE_SMALL,
                "instanceMetadata": [{"key": "ssh-keys", "value": "alice:ssh-ed25519 AAAA alice\n"}],
                "disks": [{"boot": true, "source": "/v1/regions/local-1/compute/images/stratus-guest", "sizeGb": 20}],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    assert_eq!(created.body["lifecycle"]["status"], "PROVISIONING");
    assert!(created.etag.is_some());
    let i = c.wait_status("web-1", "RUNNING", WITHIN).await;
    assert_eq!(
        i["selfLink"],
        "/v1/regions/local-1/projects/default/compute/instances/web-1"
    );
    let uid = uuid::Uuid::parse_str(i["uid"].as_str().unwrap()).unwrap();
    assert_eq!(uid.get_version_num(), 4);
    assert_eq!(i["id"], "web-1");
    assert_eq!(i["displayName"], "Web 1");
    assert_eq!(i["description"], "front end");
    assert_eq!(i["labels"], json!({"tier": "web"}));
    assert_eq!(i["type"], TYPE_SMALL);
    assert_eq!(i["instanceMetadata"][0]["key"], "ssh-keys");
    assert_eq!(i["hostname"], "web-1");
    assert!(i["disks"].is_array() && i["nics"].is_array() && i["gpus"].is_array());
    assert_eq!(i["disks"][0]["mode"], "READ_WRITE");
    for stamp in ["createdAt", "updatedAt"] {
        let text = i[stamp].as_str().unwrap();
        assert!(text.ends_with('Z'), "{stamp} {text}");
        chrono::DateTime::parse_from_rfc3339(text).unwrap();
    }
    let fields: Vec<&str> = i.as_object().unwrap().keys().map(String::as_str).collect();
    for want in [
        "selfLink",
        "uid",
        "id",
        "displayName",
        "description",
        "labels",
        "type",
        "instanceMetadata",
        "hostname",
        "lifecycle",
        "disks",
        "nics",
        "gpus",
        "createdAt",
        "updatedAt",
    ] {
        assert!(fields.contains(&want), "{want} missing from {fields:?}");
    }
    // The simulated guest's console shows what it read from its metadata.
    let console = c
        .wait_console("web-1", "1 ssh keys", Duration::from_secs(10))
        .await;
    let contents = console["contents"].as_str().unwrap();
    assert_eq!(console["start"], 0);
    let next = console["next"].as_u64().unwrap();
    assert_eq!(next as usize, contents.len());
    let tail = c
        .get(&format!("{INSTANCES}/web-1/serialPortOutput?start={next}"))
        .await;
    assert_eq!(tail.body["contents"], "");
    region.stop().await;
}

#[tokio::test]
async fn every_action_reaches_its_target_state() {
    let region = TestRegion::start().await;
    let c = &region.client;
    c.create_instance("vm").await;
    c.wait_status("vm", "RUNNING", WITHIN).await;

    let stop = c.action("vm", "stop").await;
    assert_eq!(stop.status, StatusCode::OK, "{:#}", stop.body);
    assert_eq!(stop.body["lifecycle"]["status"], "STOPPING");
    c.wait_status("vm", "TERMINATED", WITHIN).await;
    c.action("vm", "stop").await.assert_error(409);

    let start = c.action("vm", "start").await;
    assert_eq!(start.body["lifecycle"]["status"], "PROVISIONING");
    c.wait_status("vm", "RUNNING", WITHIN).await;

    let reboot = c.action("vm", "reboot").await;
    assert_eq!(reboot.body["lifecycle"]["status"], "STAGING");
    assert_eq!(reboot.body["lifecycle"]["statusMessage"], "rebooting");
    c.wait_status("vm", "RUNNING", WITHIN).await;

    let suspend = c.action("vm", "suspend").await;
    assert_eq!(suspend.body["lifecycle"]["status"], "SUSPENDING");
    c.wait_status("vm", "SUSPENDED", WITHIN).await;
    let err = c.action("vm", "start").await;
    err.assert_error(409);
    assert!(err.message().contains(":resume"), "{}", err.message());

    c.action("vm", "resume").await;
    c.wait_status("vm", "RUNNING", WITHIN).await;
    // The reboot shows on the console as another boot.
    let console = c
        .wait_console("vm", "boot 3", Duration::from_secs(10))
        .await;
    let contents = console["contents"].as_str().unwrap();
    assert!(contents.contains("Restarting system"), "{contents}");

    let unknown = c.action("vm", "explode").await;
    unknown.assert_error(404);
    assert!(unknown.message().contains("explode"));
    region.stop().await;
}

#[tokio::test]
async fn delete_works_from_every_state_including_mid_provisioning() {
    let mut config = fast_config();
    // Slow enough that each transitional state can be caught.
    config.sim.prepare_ms = 1500;
    config.sim.boot_ms = 1500;
    config.sim.stop_ms = 1500;
    config.sim.pause_ms = 1500;
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let long = Duration::from_secs(10);

    // PROVISIONING: right after create.
    c.create_instance("p").await;
    assert_eq!(
        c.delete(&format!("{INSTANCES}/p")).await.status,
        StatusCode::NO_CONTENT
    );
    let deleting = c.get(&format!("{INSTANCES}/p")).await;
    assert_eq!(deleting.body["lifecycle"]["status"], "STOPPING");
    assert_eq!(deleting.body["lifecycle"]["statusMessage"], "deleting");
    c.action("p", "start").await.assert_error(409);

    // STAGING, RUNNING, SUSPENDING, SUSPENDED, STOPPING, TERMINATED.
    for (id, reach, then) in [
        ("s", "STAGING", None),
        ("r", "RUNNING", None),
        ("su", "RUNNING", Some(("suspend", "SUSPENDING"))),
        ("sd", "SUSPENDED", None),
        ("st", "RUNNING", Some(("stop", "STOPPING"))),
        ("t", "TERMINATED", None),
    ] {
        c.create_instance(id).await;
        match id {
            "sd" => {
                c.wait_status(id, "RUNNING", long).await;
                c.action(id, "suspend").await;
            }
            "t" => {
                c.wait_status(id, "RUNNING", long).await;
                c.action(id, "stop").await;
            }
            _ => {}
        }
        c.wait_status(id, reach, long).await;
        if let Some((verb, state)) = then {
            let acted = c.action(id, verb).await;
            assert_eq!(acted.body["lifecycle"]["status"], state);
        }
        let reply = c.delete(&format!("{INSTANCES}/{id}")).await;
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{id}: {:#}",
            reply.body
        );
        assert_eq!(reply.body, serde_json::Value::Null);
    }
    for id in ["p", "s", "r", "su", "sd", "st", "t"] {
        c.wait_gone(id, long).await;
    }
    // Deleting what is gone is a 404.
    c.delete(&format!("{INSTANCES}/p")).await.assert_error(404);
    region.stop().await;
}

/// A failure the driver knows would happen again (a guest the hypervisor refuses) is not
/// retried: the instance ends at once with the reason.
#[tokio::test]
async fn a_permanent_boot_failure_is_not_retried() {
    let mut config = fast_config();
    config.agent.max_attempts = 5;
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let created = c
        .post(
            INSTANCES,
            json!({"id": "refused", "type": TYPE_SMALL,
                   "instanceMetadata": [{"key": "stratus-sim-fail", "value": "boot-permanent"}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let i = c
        .wait_status("refused", "TERMINATED", Duration::from_secs(3))
        .await;
    let message = i["lifecycle"]["statusMessage"].as_str().unwrap();
    assert!(
        message.starts_with("booting failed: simulated permanent boot failure"),
        "{message}"
    );
    region.stop().await;
}

#[tokio::test]
async fn a_guest_that_cannot_boot_ends_terminated_with_the_reason() {
    let mut config = fast_config();
    config.agent.max_attempts = 2;
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let created = c
        .post(
            INSTANCES,
            json!({"id": "broken", "type": TYPE_SMALL,
                   "instanceMetadata": [{"key": "stratus-sim-fail", "value": "boot"}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let i = c
        .wait_status("broken", "TERMINATED", Duration::from_secs(10))
        .await;
    let message = i["lifecycle"]["statusMessage"].as_str().unwrap();
    assert!(
        message.contains("booting failed after 2 attempts"),
        "{message}"
    );
    assert!(message.contains("simulated boot failure"), "{message}");
    // It stays stopped: nothing restarts it behind the owner's back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = c.get(&format!("{INSTANCES}/broken")).await;
    assert_eq!(again.body["lifecycle"]["status"], "TERMINATED");
    region.stop().await;
}

#[tokio::test]
async fn a_transition_that_never_completes_is_given_up_after_the_deadline() {
    let mut config = fast_config();
    config.sim.boot_ms = 4000;
    config.reconciler.transition_timeout_s = 1;
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    c.create_instance("slow").await;
    let i = c
        .wait_status("slow", "TERMINATED", Duration::from_secs(5))
        .await;
    let message = i["lifecycle"]["statusMessage"].as_str().unwrap();
    assert!(message.contains("gave up after 1s in STAGING"), "{message}");
    // The late boot is not allowed to overwrite the verdict; the VM it started is stopped.
    let console = c
        .wait_console("slow", "Power down", Duration::from_secs(10))
        .await;
    assert!(console["contents"].as_str().unwrap().contains("boot 1"));
    let later = c.get(&format!("{INSTANCES}/slow")).await;
    assert_eq!(later.body["lifecycle"]["status"], "TERMINATED");
    region.stop().await;
}

#[tokio::test]
async fn patch_replaces_mutable_fields_and_etags_guard_writes() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let created = c.create_instance("db").await;
    let stale = created.etag.clone().unwrap();
    let running = c.wait_status("db", "RUNNING", WITHIN).await;
    let current = c.get(&format!("{INSTANCES}/db")).await.etag.unwrap();
    assert_ne!(stale, current);

    let path = format!("{INSTANCES}/db");
    let body = json!({"displayName": "Database", "labels": {"tier": "db"},
                      "instanceMetadata": [{"key": "user-data", "value": "#cloud-config\n"}]});
    let refused = c
        .send(
            Method::PATCH,
            &path,
            Some(body.clone()),
            &[("If-Match", &stale)],
        )
        .await;
    refused.assert_error(412);
    assert_eq!(refused.reason(), "FAILED_PRECONDITION");

    let patched = c
        .send(Method::PATCH, &path, Some(body), &[("If-Match", &current)])
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
    assert_eq!(patched.body["displayName"], "Database");
    assert_eq!(patched.body["labels"], json!({"tier": "db"}));
    assert_eq!(patched.body["instanceMetadata"][0]["key"], "user-data");
    assert_eq!(patched.body["description"], running["description"]);
    assert_eq!(patched.body["type"], running["type"]);
    assert_ne!(patched.body["updatedAt"], running["updatedAt"]);
    // An empty patch changes nothing but is valid.
    let empty = c.patch(&path, json!({})).await;
    assert_eq!(empty.body["displayName"], "Database");

    c.send(Method::DELETE, &path, None, &[("If-Match", &current)])
        .await
        .assert_error(412);
    c.send(
        Method::POST,
        &format!("{path}:stop"),
        None,
        &[("If-Match", &current)],
    )
    .await
    .assert_error(412);
    let etag = empty.etag.unwrap();
    let deleted = c
        .send(Method::DELETE, &path, None, &[("If-Match", &etag)])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    region.stop().await;
}

#[tokio::test]
async fn capacity_is_enforced_with_a_message_saying_what_is_free() {
    let mut config = fast_config();
    config.host.vcpus = 5;
    config.host.memory_mb = 8192;
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    c.create_instance("a").await;
    c.create_instance("b").await;
    let full = c
        .post(INSTANCES, json!({"id": "c", "type": TYPE_SMALL}))
        .await;
    full.assert_error(409);
    assert_eq!(full.reason(), "RESOURCE_EXHAUSTED");
    let message = full.message();
    assert!(
        message.contains("2 vCPUs") && message.contains("1 vCPUs"),
        "{message}"
    );
    // A smaller type still fits; a deleted instance frees its share.
    assert_eq!(
        c.post(INSTANCES, json!({"id": "m", "type": TYPE_MICRO}))
            .await
            .status,
        StatusCode::CREATED
    );
    c.delete(&format!("{INSTANCES}/a")).await;
    c.wait_gone("a", WITHIN).await;
    c.create_instance("c").await;
    region.stop().await;
}

#[tokio::test]
async fn gpu_instances_take_gpus_of_the_host() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let gpu_type = "/v1/regions/local-1/zones/local-1a/instance-types/g1-xlarge";
    for i in 0..8 {
        let reply = c
            .post(
                INSTANCES,
                json!({"id": format!("gpu-{i}"), "type": gpu_type}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    }
    let ninth = c
        .post(INSTANCES, json!({"id": "gpu-8", "type": gpu_type}))
        .await;
    ninth.assert_error(409);
    assert!(
        ninth.message().contains("nvidia-h100"),
        "{}",
        ninth.message()
    );
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_answers_at_the_next_change() {
    let t = TestRegion::start().await;
    let c = &t.client;
    c.create_instance("watched").await;
    c.wait_status("watched", "RUNNING", Duration::from_secs(10))
        .await;
    let path = format!("{INSTANCES}/watched");
    let current = c.get(&path).await;
    let etag = current.etag.clone().unwrap();

    let unchanged = c
        .send(Method::GET, &path, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.etag.as_deref(), Some(etag.as_str()));

    let waiting = {
        let (c, path, etag) = (c.clone(), path.clone(), etag.clone());
        tokio::spawn(async move {
            c.send(
                Method::GET,
                &path,
                None,
                &[("If-None-Match", &etag), ("Prefer", "wait=20")],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the read waits while nothing changes"
    );
    let stopped = c.action("watched", "stop").await;
    assert_eq!(stopped.status, StatusCode::OK, "{:#}", stopped.body);
    let changed = waiting.await.unwrap();
    assert_eq!(changed.status, StatusCode::OK);
    // STOPPING, not TERMINATED: the answer came at the change, not at the end of the wait.
    assert_eq!(changed.body["lifecycle"]["status"], "STOPPING");
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    let bad = c
        .send(Method::GET, &path, None, &[("Prefer", "wait=soon")])
        .await;
    bad.assert_error(400);
    assert_eq!(bad.field(), "Prefer");
    t.stop().await;
}
