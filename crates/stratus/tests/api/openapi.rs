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
    assert_eq!(instance["selfLink"]["format"], "uri-reference");
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

/// What the document promises matches what the server does: ids have the pattern the server
/// checks, a malformed one is a documented 400, closed sets of values are enums, and the
/// bounds the server enforces are declared.
#[test]
fn the_document_states_what_the_server_enforces() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ResourceId"]["pattern"],
        "^[a-z]([-a-z0-9]*[a-z0-9])?$"
    );
    let mut id_operations = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let ids: Vec<&serde_json::Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path" && p["name"] != "action")
                .collect();
            for id in &ids {
                let expected = if id["name"] == "host" {
                    "#/components/schemas/HostName"
                } else {
                    "#/components/schemas/ResourceId"
                };
                assert_eq!(
                    id["schema"]["$ref"], expected,
                    "{method} {path}: parameter {} has no id pattern",
                    id["name"]
                );
            }
            let takes_id = ids
                .iter()
                .any(|p| p["name"] != "region" && p["name"] != "zone");
            if takes_id {
                id_operations += 1;
                assert!(
                    operation["responses"]["400"].is_object(),
                    "{method} {path} can answer 400 for a malformed id but does not say so"
                );
            }
        }
    }
    assert!(id_operations > 20);
    let enum_of = |schema: &str| schemas[schema]["enum"].clone();
    assert_eq!(
        enum_of("GrantType"),
        serde_json::json!(["api_key", "client_credentials"])
    );
    assert_eq!(
        enum_of("ActivationStatus"),
        serde_json::json!(["active", "disabled"])
    );
    assert_eq!(
        enum_of("CredentialStatus"),
        serde_json::json!(["active", "expired"])
    );
    assert_eq!(
        enum_of("InstanceAction"),
        serde_json::json!(["start", "stop", "reboot", "suspend", "resume"])
    );
    let vlan = &schemas["Nic"]["properties"]["vlan"];
    assert_eq!(vlan["maximum"], 4094, "{vlan:#}");
    // Every schema the document refers to is in it.
    let text = COMMITTED;
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            schemas[name].is_object(),
            "{name} is referred to but not defined"
        );
    }
}

/// `OPTIONS` and a 405 name the methods the document gives the path, not the router's.
#[tokio::test]
async fn options_and_wrong_methods_name_the_documented_methods() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let allow = |reply: &reqwest::Response| {
        reply
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", c.base);
    let options = http
        .request(reqwest::Method::OPTIONS, url(&format!("{INSTANCES}/web-1")))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status().as_u16(), 204);
    assert_eq!(allow(&options), "GET, HEAD, PATCH, DELETE, OPTIONS");
    let action = http
        .request(
            reqwest::Method::OPTIONS,
            url(&format!("{INSTANCES}/web-1:stop")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(allow(&action), "POST, OPTIONS");
    let put = http
        .put(url(&format!("{INSTANCES}/web-1")))
        .bearer_auth(c.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 405);
    assert_eq!(allow(&put), "GET, HEAD, PATCH, DELETE, OPTIONS");
    let body: serde_json::Value = put.json().await.unwrap();
    assert_eq!(body["error"]["code"], 405);
    // The router serves `{id}:{action}` at `{id}`; a method of the one is not one of the other.
    let patch_action = http
        .patch(url(&format!("{INSTANCES}/web-1:stop")))
        .bearer_auth(c.token.clone().unwrap())
        .json(&serde_json::json!({"displayName": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch_action.status().as_u16(), 405);
    assert_eq!(allow(&patch_action), "POST, OPTIONS");
    // An encoded colon names the same action.
    let encoded = http
        .post(url(&format!("{INSTANCES}/no-such-vm%3Astop")))
        .bearer_auth(c.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.status().as_u16(), 404);
    region.stop().await;
}
