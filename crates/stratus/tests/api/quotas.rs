//! Organization quotas as an operator and a tenant meet them: set through the API or the
//! configuration, checked against concurrent creates on SQLite and PostgreSQL, given back by
//! deletes and stops, taken again by `:start`, readable by the organization's administrators
//! and settable only by the region's operators.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use stratus_store::testing::PostgresCluster;

const QUOTAS: &str = "/v1/regions/global/organizations/default/quotas";

fn micro(id: &str) -> Value {
    json!({"id": id, "type": TYPE_MICRO})
}

/// 100 creates at once against a quota of 10 instances: exactly 10 are created, the other 90
/// are clean 409s naming the quota, and deleting the 10 gives the whole quota back.
async fn exactly_the_quota_gets_in(region: &TestRegion) {
    let c = &region.client;
    let set = c.patch(QUOTAS, json!({"instanceCount": 10})).await;
    assert_eq!(set.status, StatusCode::OK, "{:#}", set.body);
    assert_eq!(set.body["instanceCount"], 10);
    assert_eq!(set.body["usage"]["instanceCount"], 0);
    let creates: Vec<_> = (0..100)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.post(INSTANCES, micro(&format!("q-{n:03}"))).await })
        })
        .collect();
    let mut created = vec![];
    let mut refused = 0;
    for create in creates {
        let reply = create.await.unwrap();
        match reply.status {
            StatusCode::CREATED => created.push(reply.body["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => {
                reply.assert_error(409);
                assert_eq!(reply.reason(), "RESOURCE_EXHAUSTED");
                assert_eq!(reply.field(), "quotas.instanceCount");
                assert!(
                    reply.message().contains("instanceCount")
                        && reply.message().contains("is 10: 10 in use"),
                    "{}",
                    reply.message()
                );
                refused += 1;
            }
            other => panic!("a create answered {other}: {:#}", reply.body),
        }
    }
    assert_eq!((created.len(), refused), (10, 90));
    let usage = c.get(QUOTAS).await.body["usage"].clone();
    assert_eq!(
        (&usage["instanceCount"], &usage["cpuCores"], &usage["ramGb"]),
        (&json!(10), &json!(10), &json!(10)),
        "{usage:#}"
    );
    for id in &created {
        let deleted = c.delete(&format!("{INSTANCES}/{id}")).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:#}", deleted.body);
    }
    let usage = c.get(QUOTAS).await.body["usage"].clone();
    assert_eq!(
        (
            &usage["instanceCount"],
            &usage["cpuCores"],
            &usage["diskGb"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "deleting gives the quota back at once: {usage:#}"
    );
    assert!(
        c.post(INSTANCES, micro("after")).await.status == StatusCode::CREATED,
        "the freed quota can be used again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_get_exactly_the_quota_on_sqlite() {
    let region = TestRegion::start().await;
    exactly_the_quota_gets_in(&region).await;
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_get_exactly_the_quota_on_postgres() {
    let url = PostgresCluster::shared()
        .create_database(&format!("quotas_{}", uuid::Uuid::new_v4().simple()))
        .await
        .unwrap();
    let mut config = fast_config();
    config.database.url = url;
    let region = TestRegion::with_config(config).await;
    exactly_the_quota_gets_in(&region).await;
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_gives_cores_back_and_starting_takes_them_again() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let set = c.patch(QUOTAS, json!({"cpuCores": 2})).await;
    assert_eq!(set.status, StatusCode::OK, "{:#}", set.body);
    c.create_instance("first").await;
    c.wait_status("first", "RUNNING", Duration::from_secs(10))
        .await;
    let second = c
        .post(INSTANCES, json!({"id": "second", "type": TYPE_SMALL}))
        .await;
    second.assert_error(409);
    assert_eq!(second.field(), "quotas.cpuCores");
    assert_eq!(
        second.body["error"]["details"][0]["description"],
        "limit 2, in use 2, requested 2"
    );
    assert_eq!(c.action("first", "stop").await.status, StatusCode::OK);
    c.wait_status("first", "TERMINATED", Duration::from_secs(10))
        .await;
    let usage = c.get(QUOTAS).await.body["usage"].clone();
    assert_eq!(
        (&usage["cpuCores"], &usage["instanceCount"]),
        (&json!(0), &json!(1))
    );
    c.create_instance("second").await;
    let start = c.action("first", "start").await;
    start.assert_error(409);
    assert_eq!(start.field(), "quotas.cpuCores");
    let still = c.get(&format!("{INSTANCES}/first")).await;
    assert_eq!(
        still.body["lifecycle"]["status"], "TERMINATED",
        "a refused start changes nothing"
    );
    // An operator lifts the limit; the start goes through.
    let lifted = c.patch(QUOTAS, json!({"cpuCores": null})).await;
    assert_eq!(lifted.status, StatusCode::OK, "{:#}", lifted.body);
    assert!(lifted.body.get("cpuCores").is_none(), "{:#}", lifted.body);
    assert_eq!(c.action("first", "start").await.status, StatusCode::OK);
    c.wait_status("first", "RUNNING", Duration::from_secs(10))
        .await;
    assert_eq!(c.get(QUOTAS).await.body["usage"]["cpuCores"], 4);
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_defaults_apply_until_an_operator_overrides_them() {
    let mut config = fast_config();
    config.quotas.instance_count = Some(1);
    config.quotas.ram_gb = Some(64);
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    let quotas = c.get(QUOTAS).await;
    assert_eq!(quotas.status, StatusCode::OK, "{:#}", quotas.body);
    assert_eq!(
        (&quotas.body["instanceCount"], &quotas.body["ramGb"]),
        (&json!(1), &json!(64))
    );
    assert!(quotas.body["id"].as_str().unwrap().starts_with("quota-"));
    assert_eq!(quotas.body["selfLink"], QUOTAS);
    c.create_instance("one").await;
    c.post(INSTANCES, micro("two")).await.assert_error(409);
    let raised = c.patch(QUOTAS, json!({"instanceCount": null})).await;
    assert_eq!(raised.status, StatusCode::OK, "{:#}", raised.body);
    assert!(raised.body.get("instanceCount").is_none());
    assert_eq!(
        raised.body["ramGb"], 64,
        "a quota left out keeps its default"
    );
    c.create_instance("two").await;
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_read_quotas_and_only_operators_set_them() {
    let region = TestRegion::start().await;
    let admin = &region.client;
    let as_user = |tenant: &str, roles: &[&str]| {
        let mut client = admin.clone();
        client.token = Some(region.sign(&region.user_claims(tenant, roles)));
        client
    };
    let org_admin = as_user("default", &["admin"]);
    let read = org_admin.get(QUOTAS).await;
    assert_eq!(read.status, StatusCode::OK, "{:#}", read.body);
    let etag = read.etag.clone().expect("quotas carry an ETag");
    let set = org_admin.patch(QUOTAS, json!({"cpuCores": 1000})).await;
    set.assert_error(403);
    assert!(
        set.message().contains("resourcemanager.quotas.update"),
        "{}",
        set.message()
    );
    as_user("default", &["member"])
        .get(QUOTAS)
        .await
        .assert_error(403);
    // Another organization's quotas do not exist for this one.
    let created = admin
        .post("/v1/regions/global/organizations", json!({"id": "other"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let probe = as_user("default", &["owner"])
        .get("/v1/regions/global/organizations/other/quotas")
        .await;
    probe.assert_error(404);
    // Bad settings name the field; a stale ETag is refused.
    for (body, field) in [
        (json!({"cpuCores": -1}), "cpuCores"),
        (json!({"cpuCores": 1_u64 << 41}), "cpuCores"),
        (
            json!({"gpuCountByType": {"no-such-gpu": 1}}),
            "gpuCountByType.no-such-gpu",
        ),
        (json!({"cores": 4}), "cores"),
        (json!({"usage": {}}), "usage"),
    ] {
        let reply = admin.patch(QUOTAS, body.clone()).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{body}: {:#}", reply.body);
    }
    let first = admin
        .send(
            Method::PATCH,
            QUOTAS,
            Some(json!({"gpuCountByType": {"nvidia-h100": 2}})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    assert_eq!(first.body["gpuCountByType"]["nvidia-h100"], 2);
    let stale = admin
        .send(
            Method::PATCH,
            QUOTAS,
            Some(json!({"cpuCores": 8})),
            &[("if-match", &etag)],
        )
        .await;
    stale.assert_error(412);
    region.stop().await;
}
