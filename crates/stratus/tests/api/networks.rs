//! Networks, subnets and addresses as a tenant uses them: every instance gets an address in
//! its project's network `default`, networks with any private CIDR (overlapping others), NICs
//! asking for addresses, reservations, and deletes refused while something still uses them.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const NETWORKS: &str = "/v1/regions/local-1/projects/default/compute/networks";
const SUBNETS: &str = "/v1/regions/local-1/projects/default/compute/subnets";
const ADDRESSES: &str = "/v1/regions/local-1/projects/default/compute/addresses";

fn on(network: &str, ip: Option<&str>) -> Value {
    let mut nic = json!({"network": format!("{NETWORKS}/{network}")});
    if let Some(ip) = ip {
        nic["ipv4Address"] = json!(ip);
    }
    nic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_get_addresses_in_their_projects_networks() {
    let region = TestRegion::start().await;
    let c = &region.client;

    // An instance naming no NIC gets one in the network `default`, made on first use.
    let plain = c.create_instance("plain").await.body;
    let nic = &plain["nics"][0];
    assert_eq!(nic["network"], format!("{NETWORKS}/default"), "{plain:#}");
    assert_eq!(nic["subnet"], format!("{SUBNETS}/default-subnet"));
    assert_eq!(nic["ipv4Address"], "10.0.0.3");
    assert!(
        nic["ipv6Address"].as_str().unwrap().starts_with("fd"),
        "{nic}"
    );
    assert!(nic["macAddress"].as_str().unwrap().starts_with("52:54:00:"));
    let default = c.get(&format!("{NETWORKS}/default")).await;
    assert_eq!(default.status, StatusCode::OK, "{:#}", default.body);
    assert_eq!(default.body["cidr"], "10.0.0.0/16");
    assert_eq!(default.body["subnets"][0]["gatewayAddress"], "10.0.0.1");
    assert_eq!(default.body["subnets"][0]["ipv4Cidr"], "10.0.0.0/16");

    // Networks of any private CIDR, overlapping each other.
    let web = c
        .post(
            NETWORKS,
            json!({"id": "web", "cidr": "10.1.0.0/24", "displayName": "Web"}),
        )
        .await;
    assert_eq!(web.status, StatusCode::CREATED, "{:#}", web.body);
    assert_eq!(web.body["selfLink"], format!("{NETWORKS}/web"));
    assert!(web.etag.is_some());
    let twin = c
        .post(NETWORKS, json!({"id": "twin", "cidr": "10.1.0.0/24"}))
        .await;
    assert_eq!(
        twin.status,
        StatusCode::CREATED,
        "overlapping CIDRs are allowed"
    );
    c.post(NETWORKS, json!({"id": "web", "cidr": "10.2.0.0/24"}))
        .await
        .assert_error(409);
    for (cidr, says) in [
        ("8.8.8.0/24", "not private"),
        ("10.1.0.7/24", "did you mean"),
        ("nope", "not an IPv4 CIDR"),
    ] {
        let bad = c.post(NETWORKS, json!({"cidr": cidr})).await;
        bad.assert_error(400);
        assert_eq!(bad.field(), "cidr");
        assert!(bad.message().contains(says), "{cidr}: {}", bad.message());
    }
    let immutable = c
        .patch(&format!("{NETWORKS}/web"), json!({"cidr": "10.3.0.0/24"}))
        .await;
    immutable.assert_error(400);
    assert_eq!(immutable.field(), "cidr");
    let renamed = c
        .patch(
            &format!("{NETWORKS}/web"),
            json!({"description": "front end"}),
        )
        .await;
    assert_eq!(
        renamed.body["description"], "front end",
        "{:#}",
        renamed.body
    );

    // NICs asking for addresses: granted, taken (409 naming the field), outside (400).
    let fixed = c
        .post(
            INSTANCES,
            json!({"id": "fixed", "type": TYPE_MICRO, "nics": [on("web", Some("10.1.0.10"))]}),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{:#}", fixed.body);
    assert_eq!(fixed.body["nics"][0]["ipv4Address"], "10.1.0.10");
    let taken = c
        .post(
            INSTANCES,
            json!({"id": "taken", "type": TYPE_MICRO, "nics": [on("web", Some("10.1.0.10"))]}),
        )
        .await;
    taken.assert_error(409);
    assert!(
        taken.message().contains("nics[0].ipv4Address"),
        "{}",
        taken.message()
    );
    let same_ip_elsewhere = c
        .post(
            INSTANCES,
            json!({"id": "twin-vm", "type": TYPE_MICRO, "nics": [on("twin", Some("10.1.0.10"))]}),
        )
        .await;
    assert_eq!(
        same_ip_elsewhere.status,
        StatusCode::CREATED,
        "the same address in another network: {:#}",
        same_ip_elsewhere.body
    );
    for (nic, field) in [
        (on("web", Some("10.1.1.10")), "nics[0].ipv4Address"),
        (on("web", Some("10.1.0.1")), "nics[0].ipv4Address"),
        (on("nowhere", None), "nics[0].network"),
        (
            json!({"network": "/v1/regions/local-1/projects/other/compute/networks/web"}),
            "nics[0].network",
        ),
        (
            json!({"macAddress": "52:54:00:00:00:01"}),
            "nics[0].macAddress",
        ),
    ] {
        let refused = c
            .post(
                INSTANCES,
                json!({"type": TYPE_MICRO, "nics": [nic.clone()]}),
            )
            .await;
        refused.assert_error(400);
        assert_eq!(refused.field(), field, "{nic}: {:#}", refused.body);
    }

    // A network in use stays, saying what uses it; once free it goes.
    let in_use = c.delete(&format!("{NETWORKS}/web")).await;
    in_use.assert_error(409);
    assert!(
        in_use.message().contains("instances [fixed]"),
        "{}",
        in_use.message()
    );
    c.delete(&format!("{INSTANCES}/fixed")).await;
    c.wait_gone("fixed", Duration::from_secs(10)).await;
    assert_eq!(
        c.delete(&format!("{NETWORKS}/web")).await.status,
        StatusCode::NO_CONTENT
    );
    c.get(&format!("{NETWORKS}/web")).await.assert_error(404);
    let subnets = c.get(SUBNETS).await.body;
    let ids: Vec<&str> = subnets["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default-subnet", "twin-subnet"], "{subnets:#}");
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_reserved_held_by_nics_and_released() {
    let mut config = fast_config();
    config.networks.external_cidr = "198.51.100.0/29".into();
    let region = TestRegion::with_config(config).await;
    let c = &region.client;
    c.post(NETWORKS, json!({"id": "db", "cidr": "172.16.5.0/24"}))
        .await;

    let reserved = c
        .post(
            ADDRESSES,
            json!({"id": "db-primary", "addressType": "INTERNAL",
                   "network": format!("{NETWORKS}/db"), "ipAddress": "172.16.5.20"}),
        )
        .await;
    assert_eq!(reserved.status, StatusCode::CREATED, "{:#}", reserved.body);
    assert_eq!(
        (&reserved.body["status"], &reserved.body["ipVersion"]),
        (&json!("RESERVED"), &json!("IPV4"))
    );
    assert_eq!(reserved.body["subnetwork"], format!("{SUBNETS}/db-subnet"));
    let next = c
        .post(
            ADDRESSES,
            json!({"addressType": "INTERNAL", "subnetwork": format!("{SUBNETS}/db-subnet")}),
        )
        .await;
    assert_eq!(next.body["ipAddress"], "172.16.5.3", "{:#}", next.body);
    let twice = c
        .post(ADDRESSES, json!({"addressType": "INTERNAL", "network": format!("{NETWORKS}/db"), "ipAddress": "172.16.5.20"}))
        .await;
    twice.assert_error(409);
    assert!(
        twice.message().contains("taken by address db-primary"),
        "{}",
        twice.message()
    );
    let no_network = c.post(ADDRESSES, json!({"addressType": "INTERNAL"})).await;
    no_network.assert_error(400);
    assert_eq!(no_network.field(), "network");

    // A NIC asking for the reserved address holds it; the reservation outlives the instance.
    let vm = c
        .post(
            INSTANCES,
            json!({"id": "db-vm", "type": TYPE_MICRO, "nics": [on("db", Some("172.16.5.20"))]}),
        )
        .await;
    assert_eq!(vm.status, StatusCode::CREATED, "{:#}", vm.body);
    let held = c.get(&format!("{ADDRESSES}/db-primary")).await.body;
    assert_eq!(held["status"], "IN_USE");
    assert_eq!(held["user"], format!("{INSTANCES}/db-vm"));
    let busy = c.delete(&format!("{ADDRESSES}/db-primary")).await;
    busy.assert_error(409);
    assert!(
        busy.message().contains("instance db-vm"),
        "{}",
        busy.message()
    );
    c.delete(&format!("{INSTANCES}/db-vm")).await;
    c.wait_gone("db-vm", Duration::from_secs(10)).await;
    assert_eq!(
        c.get(&format!("{ADDRESSES}/db-primary")).await.body["status"],
        "RESERVED"
    );

    // EXTERNAL addresses come from the region's pool, never its first host.
    let mut external = vec![];
    for _ in 0..5 {
        let reply = c.post(ADDRESSES, json!({})).await;
        if reply.status != StatusCode::CREATED {
            reply.assert_error(409);
            assert_eq!(reply.reason(), "RESOURCE_EXHAUSTED");
            break;
        }
        assert_eq!(reply.body["addressType"], "EXTERNAL");
        external.push(reply.body["ipAddress"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        external,
        [
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4",
            "198.51.100.5",
            "198.51.100.6"
        ][..external.len()]
    );
    assert_eq!(external.len(), 5);
    let listed = c.get(&format!("{ADDRESSES}?pageSize=3")).await.body;
    assert_eq!(listed["addresses"].as_array().unwrap().len(), 3);
    assert!(listed["nextPageToken"].is_string(), "{listed:#}");
    for id in ["db-primary"] {
        let released = c
            .send(Method::DELETE, &format!("{ADDRESSES}/{id}"), None, &[])
            .await;
        assert_eq!(released.status, StatusCode::NO_CONTENT);
    }
    c.get(&format!("{ADDRESSES}/db-primary"))
        .await
        .assert_error(404);
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_an_external_pool_says_so() {
    let region = TestRegion::start().await;
    let reply = region
        .client
        .post(ADDRESSES, json!({"addressType": "EXTERNAL"}))
        .await;
    reply.assert_error(409);
    assert!(
        reply.message().contains("external-cidr"),
        "{}",
        reply.message()
    );
    region.stop().await;
}
