//! Bad input gets a 4xx in the contract's error body naming what is wrong; never a 5xx.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn create_body(extra: Value) -> Value {
    let mut body = json!({"type": TYPE_SMALL});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn bad_create_bodies_name_the_offending_field() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let long_id = "a".repeat(64);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"id": "Web_1"}), "id"),
        (json!({"id": "1web"}), "id"),
        (json!({"id": long_id}), "id"),
        (json!({"id": "web-"}), "id"),
        (
            json!({"type": "/v1/regions/local-1/zones/local-1a/instance-types/huge"}),
            "type",
        ),
        (json!({"type": "e2-small"}), "type"),
        (
            json!({"type": "/v1/regions/other-9/zones/local-1a/instance-types/e2-small"}),
            "type",
        ),
        (
            json!({"type": "/v1/regions/local-1/zones/nowhere/instance-types/e2-small"}),
            "type",
        ),
        (json!({"type": 42}), "type"),
        (json!({"colour": "blue"}), "colour"),
        (
            json!({"uid": "5a0beb23-a101-4e6c-ae78-2b3f1aa99e23"}),
            "uid",
        ),
        (json!({"lifecycle": {"status": "RUNNING"}}), "lifecycle"),
        (json!({"createdAt": "2026-01-01T00:00:00Z"}), "createdAt"),
        (
            json!({"instanceMetadata": [{"key": "bad key", "value": "x"}]}),
            "instanceMetadata[0].key",
        ),
        (
            json!({"instanceMetadata": [{"key": "k".repeat(128), "value": "x"}]}),
            "instanceMetadata[0].key",
        ),
        (
            json!({"instanceMetadata": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}),
            "instanceMetadata[1].key",
        ),
        (
            json!({"instanceMetadata": [{"key": "a"}]}),
            "instanceMetadata[0].value",
        ),
        (json!({"hostname": "not_valid"}), "hostname"),
        (json!({"labels": {"bad key": "x"}}), "labels"),
        (json!({"labels": {"k": 1}}), "labels.k"),
        (json!({"disks": [{"sizeGb": -1}]}), "disks[0].sizeGb"),
        (
            json!({"disks": [{"sizeGb": 10, "interface": "IDE"}]}),
            "disks[0].interface",
        ),
        (
            json!({"disks": [{"source": "/v1/regions/local-1/compute/images/nope"}]}),
            "disks[0].source",
        ),
        (
            json!({"disks": [{"source": "not a uri"}]}),
            "disks[0].source",
        ),
        (
            json!({"disks": [{"source": "/v1/regions/local-1/compute/images/stratus-guest", "sizeGb": 0}]}),
            "disks[0].sizeGb",
        ),
        (json!({"disks": [{"boot": true}]}), "disks[0].sizeGb"),
        (
            json!({"disks": [{"sizeGb": 1, "boot": true}, {"sizeGb": 1, "boot": true}]}),
            "disks[1].boot",
        ),
        (
            json!({"nics": [{"network": "/v1/regions/local-1/projects/default/compute/networks/nope"}]}),
            "nics[0].network",
        ),
        (
            json!({"nics": [{"ipv4Address": "300.1.1.1"}]}),
            "nics[0].ipv4Address",
        ),
        (
            json!({"gpus": [{"type": "/v1/regions/local-1/zones/local-1a/gpu-types/nope", "count": 1}]}),
            "gpus[0].type",
        ),
        (
            json!({"gpus": [{"type": "/v1/regions/local-1/zones/local-1a/gpu-types/nvidia-h100", "count": 0}]}),
            "gpus[0].count",
        ),
        (json!({"displayName": "x".repeat(300)}), "displayName"),
    ];
    for (extra, field) in cases {
        let body = if extra.get("type").is_some() && extra.as_object().unwrap().len() == 1 {
            extra.clone()
        } else {
            create_body(extra.clone())
        };
        let reply = c.post(INSTANCES, body).await;
        reply.assert_error(400);
        assert_eq!(reply.reason(), "INVALID_ARGUMENT", "{extra}");
        assert_eq!(reply.field(), field, "{extra}: {:#}", reply.body);
    }
    // Missing the one required field.
    let reply = c.post(INSTANCES, json!({"id": "x"})).await;
    reply.assert_error(400);
    assert_eq!(reply.field(), "type");
    region.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400s_not_crashes() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let raw = |body: &'static str, content_type: &'static str| {
        let c = c.clone();
        async move {
            let http = reqwest::Client::new();
            let response = http
                .post(format!("{}{INSTANCES}", c.base))
                .bearer_auth(c.token.as_ref().unwrap())
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };
    for (body, content_type, field) in [
        ("{not json", "application/json", "body"),
        ("[1,2]", "application/json", "body"),
        (
            "type=x",
            "application/x-www-form-urlencoded",
            "Content-Type",
        ),
    ] {
        let (status, reply) = raw(body, content_type).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply["error"]["details"][0]["field"], field);
    }
    let huge = "x".repeat(2 << 20);
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}{INSTANCES}", c.base))
        .bearer_auth(c.token.as_ref().unwrap())
        .header("content-type", "application/json")
        .body(format!("{{\"type\":\"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 413);

    let put = c.send(Method::PUT, INSTANCES, Some(json!({})), &[]).await;
    put.assert_error(405);
    c.get("/v1/nothing/here").await.assert_error(404);
    region.stop().await;
}

#[tokio::test]
async fn patch_refuses_read_only_immutable_and_unknown_fields() {
    let region = TestRegion::start().await;
    let c = &region.client;
    c.create_instance("vm").await;
    let path = format!("{INSTANCES}/vm");
    for (body, field) in [
        (json!({"type": TYPE_MICRO}), "type"),
        (json!({"hostname": "other"}), "hostname"),
        (json!({"disks": []}), "disks"),
        (json!({"nics": []}), "nics"),
        (json!({"gpus": []}), "gpus"),
        (json!({"id": "renamed"}), "id"),
        (json!({"uid": "x"}), "uid"),
        (json!({"selfLink": "x"}), "selfLink"),
        (json!({"lifecycle": {}}), "lifecycle"),
        (json!({"updatedAt": "x"}), "updatedAt"),
        (json!({"size": 3}), "size"),
        (
            json!({"instanceMetadata": [{"key": "a/b", "value": ""}]}),
            "instanceMetadata[0].key",
        ),
    ] {
        let reply = c.patch(&path, body.clone()).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{body}");
    }
    let immutable = c.patch(&path, json!({"type": TYPE_MICRO})).await;
    assert!(
        immutable.message().contains("cannot be changed"),
        "{}",
        immutable.message()
    );
    let read_only = c.patch(&path, json!({"uid": "x"})).await;
    assert!(
        read_only.message().contains("read-only"),
        "{}",
        read_only.message()
    );
    region.stop().await;
}

#[tokio::test]
async fn ids_in_paths_are_checked_and_unknown_ones_are_404() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let bad = c.get(&format!("{INSTANCES}/Not_An_Id")).await;
    bad.assert_error(400);
    assert_eq!(bad.field(), "id");
    let long = c.get(&format!("{INSTANCES}/{}", "a".repeat(64))).await;
    long.assert_error(400);
    c.get(&format!("{INSTANCES}/nope")).await.assert_error(404);
    c.patch(&format!("{INSTANCES}/nope"), json!({}))
        .await
        .assert_error(404);
    c.action("nope", "stop").await.assert_error(404);
    c.get("/v1/regions/local-1/projects/nope/compute/instances")
        .await
        .assert_error(404);
    let other_region = c
        .get("/v1/regions/eu-west-9/projects/default/compute/instances")
        .await;
    other_region.assert_error(404);
    assert!(
        other_region.message().contains("local-1"),
        "{}",
        other_region.message()
    );
    c.create_instance("twice").await;
    let dup = c
        .post(INSTANCES, json!({"id": "twice", "type": TYPE_SMALL}))
        .await;
    dup.assert_error(409);
    assert_eq!(dup.reason(), "ALREADY_EXISTS");
    region.stop().await;
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let anonymous = Client::anonymous(&c.base);
    anonymous.get(INSTANCES).await.assert_error(401);
    let mut forged = c.clone();
    forged.token = Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".into());
    forged.get(INSTANCES).await.assert_error(401);
    let mut tampered = c.clone();
    let token = c.token.clone().unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    tampered.token = Some(parts.join("."));
    tampered.get(INSTANCES).await.assert_error(401);
    let wrong_scheme = anonymous
        .send(
            Method::GET,
            INSTANCES,
            None,
            &[("authorization", "Basic YTpi")],
        )
        .await;
    assert_eq!(wrong_scheme.status, StatusCode::UNAUTHORIZED);

    let bad_key = anonymous
        .post(
            "/v1/regions/global/auth/token",
            json!({"grant_type": "api_key", "api_key": "stk_nope"}),
        )
        .await;
    bad_key.assert_error(401);
    let bad_grant = anonymous
        .post(
            "/v1/regions/global/auth/token",
            json!({"grant_type": "password"}),
        )
        .await;
    bad_grant.assert_error(400);
    assert_eq!(bad_grant.field(), "grant_type");
    // The unauthenticated paths stay open.
    assert_eq!(anonymous.get("/healthz").await.status, StatusCode::OK);
    let jwks = anonymous.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    assert_eq!(anonymous.get("/openapi.json").await.status, StatusCode::OK);
    region.stop().await;
}
