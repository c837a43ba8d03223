//! The OpenAPI document: generated from the code, served, and committed in sync.

use crate::support::*;

const COMMITTED: &str = include_str!("../../../../openapi/stratus.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = stratus_api::document_json();
    assert!(
        generated == COMMITTED,
        "openapi/stratus.json is out of date; regenerate it with\n    cargo run -q -- openapi > openapi/stratus.json"
    );
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_covers_every_operation() {
    let region = TestRegion::start().await;
    let served = region.client.get("/openapi.json").await;
    let committed: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(served.body, committed);
    assert_eq!(served.body["openapi"], "3.1.0");
    let paths = served.body["paths"].as_object().unwrap();
    for path in [
        "/v1/regions/{region}/projects/{project}/compute/instances",
        "/v1/regions/{region}/projects/{project}/compute/instances/{id}",
        "/v1/regions/{region}/projects/{project}/compute/instances/{id}:{action}",
        "/v1/regions/global/projects/{id}",
        "/v1/regions/global/organizations/{id}",
        "/v1/regions/global/auth/token",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let instance = &served.body["components"]["schemas"]["Instance"]["properties"];
    assert_eq!(instance["selfLink"]["format"], "uri");
    assert_eq!(instance["uid"]["format"], "uuid");
    region.stop().await;
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_guarded() {
    let region = TestRegion::start().await;
    let anonymous = Client::anonymous(&region.client.base);
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let public = [
        "/healthz",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/v1/regions/global/auth/token",
    ];
    let mut checked = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{region}", "local-1")
            .replace("{project}", "default")
            .replace("{zone}", "local-1a")
            .replace("{id}:{action}", "x:start")
            .replace("{id}", "x");
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == reqwest::Method::POST || method == reqwest::Method::PATCH)
                .then(|| serde_json::json!({}));
            let reply = anonymous.send(method.clone(), &concrete, body, &[]).await;
            if public.contains(&path.as_str()) {
                assert!(
                    !matches!(reply.status.as_u16(), 401 | 404 | 405),
                    "{method} {path}: {}",
                    reply.status
                );
            } else {
                assert_eq!(
                    reply.status.as_u16(),
                    401,
                    "{method} {path} must be routed and need a token"
                );
                reply.assert_error(401);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
    region.stop().await;
}
