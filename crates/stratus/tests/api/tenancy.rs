//! Organizations, projects and the catalog.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn organizations_and_projects_have_the_contract_crud() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let org = c
        .post(
            "/v1/regions/global/organizations",
            json!({"id": "acme", "displayName": "Acme"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{:#}", org.body);
    assert_eq!(
        org.body["selfLink"],
        "/v1/regions/global/organizations/acme"
    );
    c.post("/v1/regions/global/organizations", json!({"id": "acme"}))
        .await
        .assert_error(409);
    let generated = c.post("/v1/regions/global/organizations", json!({})).await;
    assert!(generated.body["id"].as_str().unwrap().starts_with("org-"));

    let project = c
        .post(
            "/v1/regions/global/projects",
            json!({"id": "web", "organizationId": "acme", "description": "sites"}),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{:#}", project.body);
    assert_eq!(project.body["organizationId"], "acme");
    let missing_org = c
        .post(
            "/v1/regions/global/projects",
            json!({"id": "x", "organizationId": "nope"}),
        )
        .await;
    missing_org.assert_error(400);
    assert_eq!(missing_org.field(), "organizationId");
    let no_org = c
        .post("/v1/regions/global/projects", json!({"id": "x"}))
        .await;
    assert_eq!(no_org.field(), "organizationId");

    let listed = c
        .get("/v1/regions/global/projects?organizationId=acme")
        .await;
    assert_eq!(listed.body["projects"].as_array().unwrap().len(), 1);
    let with_total = c.get("/v1/regions/global/projects?offset=0").await;
    assert_eq!(with_total.body["total"], 2, "default and web");

    let patched = c
        .patch(
            "/v1/regions/global/projects/web",
            json!({"displayName": "Web"}),
        )
        .await;
    assert_eq!(patched.body["displayName"], "Web");
    c.patch(
        "/v1/regions/global/projects/web",
        json!({"organizationId": "other"}),
    )
    .await
    .assert_error(400);

    // A project with instances cannot go; the organization with projects neither.
    let vm = c
        .post(
            "/v1/regions/local-1/projects/web/compute/instances",
            json!({"id": "vm", "type": TYPE_MICRO}),
        )
        .await;
    assert_eq!(vm.status, StatusCode::CREATED);
    let busy = c.delete("/v1/regions/global/projects/web").await;
    busy.assert_error(409);
    assert!(busy.message().contains("instances"), "{}", busy.message());
    c.delete("/v1/regions/global/organizations/acme")
        .await
        .assert_error(409);
    c.delete("/v1/regions/local-1/projects/web/compute/instances/vm")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let reply = c.delete("/v1/regions/global/projects/web").await;
        if reply.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:#}", reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.get("/v1/regions/global/projects/web")
        .await
        .assert_error(404);
    assert_eq!(
        c.delete("/v1/regions/global/organizations/acme")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    region.stop().await;
}

#[tokio::test]
async fn the_catalog_describes_region_zones_types_and_images() {
    let region = TestRegion::start().await;
    let c = &region.client;
    let regions = c.get("/v1/regions").await;
    assert_eq!(regions.body["regions"][0]["id"], "local-1");
    assert_eq!(
        regions.body["regions"][0]["zones"][0],
        "/v1/regions/local-1/zones/local-1a"
    );
    let zone = c.get("/v1/regions/local-1/zones/local-1a").await;
    assert_eq!(zone.body["region"], "/v1/regions/local-1");
    let types = c
        .get("/v1/regions/local-1/zones/local-1a/instance-types")
        .await;
    let types = types.body["instanceTypes"].as_array().unwrap();
    assert!(types.len() >= 3);
    for t in types {
        assert!(t["vcpus"].as_u64().unwrap() > 0);
        assert!(t["memoryMb"].as_u64().unwrap() > 0);
        assert!(t["gpus"].is_array());
    }
    let small = c.get(TYPE_SMALL).await;
    assert_eq!(small.body["selfLink"], TYPE_SMALL);
    assert_eq!(small.body["vcpus"], 2);
    let gpu = c
        .get("/v1/regions/local-1/zones/local-1a/instance-types/g1-xlarge")
        .await;
    assert_eq!(
        gpu.body["gpus"][0]["type"],
        "/v1/regions/local-1/zones/local-1a/gpu-types/nvidia-h100"
    );
    let h100 = c
        .get("/v1/regions/local-1/zones/local-1a/gpu-types/nvidia-h100")
        .await;
    assert_eq!(h100.body["memoryGb"], 80);
    let images = c.get("/v1/regions/local-1/compute/images").await;
    assert_eq!(images.body["images"][0]["status"], "READY");
    c.get("/v1/regions/local-1/zones/local-9z")
        .await
        .assert_error(404);
    c.get("/v1/regions/local-1/compute/images/nope")
        .await
        .assert_error(404);
    c.get("/v1/regions/mars-1").await.assert_error(404);
    let paged = c
        .get("/v1/regions/local-1/zones/local-1a/instance-types?pageSize=2")
        .await;
    assert_eq!(paged.body["instanceTypes"].as_array().unwrap().len(), 2);
    assert!(paged.body["nextPageToken"].is_string());
    region.stop().await;
}
