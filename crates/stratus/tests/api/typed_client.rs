//! The typed client (`stratus-client`) against a region: every operation it offers, and the
//! API's error bodies kept intact in its errors.

use crate::support::*;
use std::time::{Duration, Instant};
use stratus_client::{Client, Error, InstanceAction, ListOptions};
use stratus_types::{
    Disk, DiskMode, InstanceCreateRequest, InstanceStatus, InstanceUpdateRequest, Labels,
    OrganizationCreateRequest, OrganizationUpdateRequest, ProjectCreateRequest,
    ProjectUpdateRequest, ResourceId,
};

async fn wait_for(
    instances: &stratus_client::Instances<'_>,
    id: &str,
    want: InstanceStatus,
) -> stratus_types::Instance {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let instance = instances.get(id).await.unwrap();
        if instance.lifecycle.status == want {
            return instance;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {want:?}: {instance:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn typed_client_drives_an_instance_through_its_lifecycle() {
    let region = TestRegion::start().await;
    let client = region.typed();
    let instances = client.instances("local-1", "default");
    let created = instances
        .create(&InstanceCreateRequest {
            id: Some(ResourceId::parse("web-1").unwrap()),
            labels: Some(Labels::parse([("tier".into(), "web".into())].into()).unwrap()),
            instance_type: TYPE_SMALL.into(),
            disks: Some(vec![Disk {
                size_gb: Some(2),
                interface: None,
                source: Some("/v1/regions/local-1/compute/images/stratus-guest".into()),
                boot: true,
                disk_type: None,
                mode: DiskMode::ReadWrite,
            }]),
            ..InstanceCreateRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(created.lifecycle.status, InstanceStatus::Provisioning);
    wait_for(&instances, "web-1", InstanceStatus::Running).await;
    instances
        .create(&InstanceCreateRequest {
            instance_type: TYPE_MICRO.into(),
            ..InstanceCreateRequest::default()
        })
        .await
        .unwrap();

    let page = instances
        .list(&ListOptions {
            page_size: Some(1),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(page.instances.len(), 1);
    assert!(page.next_page_token.is_some());
    assert_eq!(instances.list_all(None).await.unwrap().len(), 2);
    let web = instances.list_all(Some("tier=web")).await.unwrap();
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].id.as_str(), "web-1");

    let updated = instances
        .update(
            "web-1",
            &InstanceUpdateRequest {
                display_name: Some("Web one".into()),
                ..InstanceUpdateRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Web one");

    let stopping = instances.act("web-1", InstanceAction::Stop).await.unwrap();
    assert_eq!(stopping.lifecycle.status, InstanceStatus::Stopping);
    wait_for(&instances, "web-1", InstanceStatus::Terminated).await;
    instances.act("web-1", InstanceAction::Start).await.unwrap();
    wait_for(&instances, "web-1", InstanceStatus::Running).await;

    let console = instances.serial_port_output("web-1", 0).await.unwrap();
    assert_eq!(console.start, 0);
    assert_eq!(console.next as usize, console.contents.len());
    let tail = instances
        .serial_port_output("web-1", console.next)
        .await
        .unwrap();
    assert_eq!(tail.start, console.next);

    instances.delete("web-1").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match instances.get("web-1").await {
            Err(e) if e.status() == Some(404) => break,
            other => assert!(Instant::now() < deadline, "still there: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    region.stop().await;
}

#[tokio::test]
async fn typed_client_reads_the_catalog_and_manages_tenancy() {
    let region = TestRegion::start().await;
    let client = region.typed();
    let regions = client.list_regions().await.unwrap();
    assert_eq!(regions.regions[0].id, "local-1");
    let catalog = client.catalog("local-1");
    assert_eq!(catalog.region().await.unwrap().id, "local-1");
    assert_eq!(catalog.zones().await.unwrap().zones[0].id, "local-1a");
    let types = catalog.instance_types("local-1a").await.unwrap();
    assert!(types.instance_types.iter().any(|t| t.id == "e2-small"));
    let small = catalog.instance_type("local-1a", "e2-small").await.unwrap();
    assert_eq!((small.vcpus, small.memory_mb), (2, 2048));
    let gpus = catalog.gpu_types("local-1a").await.unwrap();
    assert_eq!(gpus.gpu_types[0].id, "nvidia-h100");
    let images = catalog.images().await.unwrap();
    assert!(images.images.iter().any(|i| i.id == "stratus-guest"));
    assert_eq!(catalog.image("stratus-guest").await.unwrap().os, "busybox");

    let org = client
        .create_organization(&OrganizationCreateRequest {
            id: Some(ResourceId::parse("acme").unwrap()),
            ..OrganizationCreateRequest::default()
        })
        .await
        .unwrap();
    let org = client
        .update_organization(
            org.id.as_str(),
            &OrganizationUpdateRequest {
                display_name: Some("Acme".into()),
                ..OrganizationUpdateRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(client.get_organization("acme").await.unwrap(), org);
    let orgs = client
        .list_organizations(&ListOptions::default())
        .await
        .unwrap();
    assert!(orgs.organizations.iter().any(|o| o.id.as_str() == "acme"));
    client
        .create_project(&ProjectCreateRequest {
            id: Some(ResourceId::parse("rockets").unwrap()),
            display_name: None,
            description: None,
            organization_id: org.id.clone(),
        })
        .await
        .unwrap();
    let project = client
        .update_project(
            "rockets",
            &ProjectUpdateRequest {
                description: Some("launch things".into()),
                ..ProjectUpdateRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(client.get_project("rockets").await.unwrap(), project);
    let all = client.list_all_projects().await.unwrap();
    assert!(all.iter().any(|p| p.id.as_str() == "rockets"));
    client.delete_project("rockets").await.unwrap();
    client.delete_organization("acme").await.unwrap();
    assert_eq!(
        client.get_project("rockets").await.unwrap_err().status(),
        Some(404)
    );
    region.stop().await;
}

#[tokio::test]
async fn typed_client_errors_carry_the_api_error_body() {
    let region = TestRegion::start().await;
    let client = region.typed();
    let error = client
        .instances("local-1", "default")
        .create(&InstanceCreateRequest {
            instance_type: "/v1/regions/local-1/zones/local-1a/instance-types/huge".into(),
            ..InstanceCreateRequest::default()
        })
        .await
        .unwrap_err();
    let api = error.api().expect("an API error");
    assert_eq!(api.status, 400);
    assert_eq!(api.body.error.code, 400);
    assert_eq!(api.reason(), Some("INVALID_ARGUMENT"));
    assert_eq!(api.field(), Some("type"));
    assert!(api.message().contains("huge"), "{api}");
    assert!(api.request_id.is_some());
    let line = error.to_string();
    assert!(
        !line.contains('\n') && line.contains("field type"),
        "{line}"
    );

    let anonymous = Client::new(&region.endpoint()).unwrap();
    let denied = anonymous
        .instances("local-1", "default")
        .list_all(None)
        .await
        .unwrap_err();
    assert_eq!(denied.status(), Some(401));
    assert_eq!(denied.api().unwrap().reason(), Some("UNAUTHENTICATED"));
    let refused = anonymous.exchange_api_key("not-a-key").await.unwrap_err();
    assert_eq!(refused.status(), Some(401));

    // An id typed by a user stays one path segment: this is an invalid instance id (400), not
    // a way out to /healthz.
    let odd = client
        .instances("local-1", "default")
        .get("../../../../healthz")
        .await
        .unwrap_err();
    assert_eq!(odd.status(), Some(400), "{odd}");

    assert!(matches!(
        Client::new("127.0.0.1:8080"),
        Err(Error::InvalidEndpoint(_))
    ));
    let unreachable = Client::new("http://127.0.0.1:1")
        .unwrap()
        .list_regions()
        .await
        .unwrap_err();
    assert!(
        matches!(unreachable, Error::Transport { .. }),
        "{unreachable}"
    );
    assert!(
        unreachable.to_string().contains("refused"),
        "names the cause: {unreachable}"
    );
    region.stop().await;
}

#[tokio::test]
async fn typed_client_updates_only_the_version_it_read() {
    let region = TestRegion::start().await;
    let client = region.typed();
    let instances = client.instances("local-1", "default");
    region.client.create_instance("etag-1").await;
    let read = instances.get_versioned("etag-1").await.unwrap();
    let etag = read.etag.expect("single resources carry an ETag");
    let rename = |name: &str| InstanceUpdateRequest {
        display_name: Some(name.into()),
        ..InstanceUpdateRequest::default()
    };
    let updated = instances
        .update_if_match("etag-1", &rename("first"), &etag)
        .await
        .unwrap();
    assert_eq!(updated.display_name, "first");
    let stale = instances
        .update_if_match("etag-1", &rename("second"), &etag)
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(412), "{stale}");
    assert_eq!(
        instances.get("etag-1").await.unwrap().display_name,
        "first",
        "a stale update changes nothing"
    );
    region.stop().await;
}
