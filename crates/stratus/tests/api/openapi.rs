//! The OpenAPI document: generated from the code, served, and committed in sync.

use crate::support::*;

const COMMITTED: &str = include_str!("../../../../openapi/stratus.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = stratus_api::openapi::document_json();
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
