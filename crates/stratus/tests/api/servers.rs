//! The servers API without a BMC to talk to: validation, conflicts, batches, updates, logs,
//! decommissioning, and the deploy ramdisk's token-guarded endpoints.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use stratus_api::app::deploy::DeployTask;

const SERVERS: &str = "/v1/regions/local-1/projects/default/infrastructure/servers";

fn server(id: &str, bmc: &str) -> serde_json::Value {
    json!({"id": id, "bmcAddress": bmc, "bmcUsername": "admin", "bmcPassword": "secret-1"})
}

#[tokio::test]
async fn servers_are_validated_named_batched_patched_logged_and_decommissioned() {
    let t = TestRegion::start().await;
    let c = &t.client;

    // Bad input names the field.
    for (body, field) in [
        (server("s1", "bmc.example"), "bmcAddress"),
        (server("s1", "ftp://bmc.example"), "bmcAddress"),
        (server("s1", "http://admin:pw@bmc.example"), "bmcAddress"),
        (
            json!({"id": "s1", "bmcAddress": "http://127.0.0.1:9", "bmcUsername": "", "bmcPassword": "p"}),
            "bmcUsername",
        ),
        (
            json!({"id": "s1", "bmcAddress": "http://127.0.0.1:9", "bmcUsername": "u", "bmcPassword": ""}),
            "bmcPassword",
        ),
        (
            json!({"id": "s1", "bmcAddress": "http://127.0.0.1:9", "bmcUsername": "u", "bmcPassword": "p", "zone": "nowhere"}),
            "zone",
        ),
        (
            json!({"id": "s1", "bmcAddress": "http://127.0.0.1:9", "bmcUsername": "u", "bmcPassword": "p", "provisioningState": "ready"}),
            "provisioningState",
        ),
    ] {
        let reply = c.post(SERVERS, body.clone()).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{body}: {:#}", reply.body);
    }

    // Registered: no credentials in the answer; an unreachable BMC fails the inspection.
    let reply = c.post(SERVERS, server("s1", "http://127.0.0.1:9")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    assert_eq!(reply.body["provisioningState"], "registered");
    assert!(!reply.body.to_string().contains("secret-1"));
    assert!(reply.body.get("bmcPassword").is_none() && reply.body.get("bmcUsername").is_none());
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let s = c.get(&format!("{SERVERS}/s1")).await.body;
        if s["provisioningState"] == "failed" {
            break s;
        }
        assert!(Instant::now() < deadline, "inspection never failed: {s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        failed["statusMessage"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{failed:#}"
    );
    assert_eq!(failed["healthStatus"]["status"], "failed");

    // The same id or the same BMC again: 409.
    c.post(SERVERS, server("s1", "http://127.0.0.1:10"))
        .await
        .assert_error(409);
    c.post(SERVERS, server("s2", "http://127.0.0.1:9"))
        .await
        .assert_error(409);

    // A batch succeeds and fails item by item; a malformed item fails it whole, named.
    let batch = c
        .post(
            &format!("{SERVERS}:batchCreate"),
            json!({"servers": [server("s3", "http://127.0.0.1:11"), server("s1", "http://127.0.0.1:12")]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{:#}", batch.body);
    assert_eq!(batch.body["succeeded"][0]["id"], "s3");
    assert_eq!(batch.body["failed"][0]["index"], 1);
    assert_eq!(batch.body["failed"][0]["error"]["code"], 409);
    let malformed = c
        .post(
            &format!("{SERVERS}:batchCreate"),
            json!({"servers": [server("s5", "http://127.0.0.1:13"), server("s6", "nonsense")]}),
        )
        .await;
    malformed.assert_error(400);
    assert_eq!(malformed.field(), "servers[1].bmcAddress");
    assert_eq!(
        c.get(&format!("{SERVERS}/s5")).await.status,
        StatusCode::NOT_FOUND,
        "nothing of a refused batch is registered"
    );

    // Patch what may change; what may not is refused.
    let patched = c
        .patch(
            &format!("{SERVERS}/s3"),
            json!({"tags": {"rack": "r7"}, "persona": "gpu-node", "displayName": "R7 left"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
    assert_eq!(patched.body["tags"], json!({"rack": "r7"}));
    assert_eq!(patched.body["persona"], "gpu-node");
    let immutable = c
        .patch(&format!("{SERVERS}/s3"), json!({"bmcAddress": "http://x"}))
        .await;
    immutable.assert_error(400);
    assert_eq!(immutable.field(), "bmcAddress");

    // Unknown actions and bad log queries name what is wrong.
    let unknown = c.post(&format!("{SERVERS}/s3:explode"), json!({})).await;
    unknown.assert_error(400);
    assert!(unknown.message().contains("explode"), "{:#}", unknown.body);
    let bad_time = c
        .get(&format!("{SERVERS}/s3/logs?startTime=yesterday"))
        .await;
    bad_time.assert_error(400);
    assert_eq!(bad_time.field(), "startTime");

    // The log pages, oldest first.
    let first = c.get(&format!("{SERVERS}/s1/logs?pageSize=1")).await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    assert!(
        first.body["logs"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("registered"),
        "{:#}",
        first.body
    );
    let token = first.body["nextPageToken"].as_str().unwrap();
    let second = c
        .get(&format!("{SERVERS}/s1/logs?pageSize=1&pageToken={token}"))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{:#}", second.body);
    assert_ne!(second.body["logs"][0], first.body["logs"][0]);
    assert!(!second.body.to_string().contains("secret-1"));

    // Decommissioned: shown as such; its BMC address may be registered again.
    let reply = c.delete(&format!("{SERVERS}/s1")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:#}", reply.body);
    let gone = c.get(&format!("{SERVERS}/s1")).await;
    assert_eq!(gone.body["provisioningState"], "decommissioned");
    let again = c
        .post(SERVERS, server("s1-again", "http://127.0.0.1:9"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:#}", again.body);
    let list = c.get(SERVERS).await;
    assert_eq!(list.body["servers"].as_array().unwrap().len(), 3);
    t.stop().await;
}

#[tokio::test]
async fn the_deploy_endpoints_answer_only_a_live_token_and_give_the_image_once() {
    let t = TestRegion::start().await;
    let app = t.region.as_ref().unwrap().app.clone();
    let image = t.dir.path().join("image.raw");
    std::fs::write(&image, b"an image").unwrap();
    let (token, outcome) = app.open_deploy(uuid::Uuid::new_v4(), DeployTask::Deploy { image });
    let base = format!("{}/internal/v1/deploy", t.client.base);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap() }
    };

    // A token nobody issued reaches nothing.
    for path in ["task", "image", "ramdisk.iso", "seed.iso"] {
        let reply = get(format!("{base}/{}/{path}", "0".repeat(32))).await;
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        get(format!("{base}/{token}/task"))
            .await
            .text()
            .await
            .unwrap(),
        "deploy\n"
    );
    let first = get(format!("{base}/{token}/image")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.bytes().await.unwrap().as_ref(), b"an image");
    let second = get(format!("{base}/{token}/image")).await;
    assert_eq!(
        second.status(),
        StatusCode::CONFLICT,
        "the image is given once"
    );

    // The report reaches the driver waiting on it; then the token is closed and dead.
    let reply = http
        .post(format!("{base}/{token}/result"))
        .body("failed: short image: got 3 of 8 bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        outcome.borrow().clone(),
        Some(Err("short image: got 3 of 8 bytes".to_owned()))
    );
    app.close_deploy(&token);
    assert_eq!(
        get(format!("{base}/{token}/task")).await.status(),
        StatusCode::NOT_FOUND
    );
    t.stop().await;
}
