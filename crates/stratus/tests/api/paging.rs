//! List paging: tokens, offsets, label selectors, and bad parameters.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn pages_of_fifty_walk_120_instances_while_others_come_and_go() {
    let region = TestRegion::start().await;
    let c = &region.client;
    for i in 0..120 {
        let tier = if i % 3 == 0 { "db" } else { "web" };
        let reply = c
            .post(
                INSTANCES,
                json!({"id": format!("vm-{i:03}"), "type": TYPE_MICRO, "labels": {"tier": tier}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = format!("{INSTANCES}?pageSize=50");
    loop {
        let page = c.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
        pages += 1;
        for i in page.body["instances"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_owned());
        }
        // Between pages: one instance ahead of the cursor appears, one behind goes.
        let reply = c
            .post(
                INSTANCES,
                json!({"id": format!("zz-{pages}"), "type": TYPE_MICRO}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(
            c.delete(&format!("{INSTANCES}/vm-{:03}", pages - 1))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        match page.body.get("nextPageToken") {
            Some(token) => {
                path = format!(
                    "{INSTANCES}?pageSize=50&pageToken={}",
                    token.as_str().unwrap()
                )
            }
            None => break,
        }
    }
    assert_eq!(pages, 3, "120 instances in pages of 50");
    let originals: Vec<_> = seen.iter().filter(|id| id.starts_with("vm-")).collect();
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(originals.len(), 120, "no misses");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "ordered by id");

    // Offset mode reports the total and no token.
    let page = c.get(&format!("{INSTANCES}?offset=100&pageSize=10")).await;
    assert!(page.body["total"].as_u64().unwrap() >= 120);
    assert_eq!(page.body["instances"].as_array().unwrap().len(), 10);
    assert!(page.body.get("nextPageToken").is_none());

    // Label selectors filter, and their tokens belong to their query.
    let db = c
        .get(&format!("{INSTANCES}?labelSelector=tier%3Ddb&pageSize=30"))
        .await;
    let items = db.body["instances"].as_array().unwrap();
    assert_eq!(items.len(), 30);
    assert!(items.iter().all(|i| i["labels"]["tier"] == "db"));
    let token = db.body["nextPageToken"].as_str().unwrap();
    let rest = c
        .get(&format!(
            "{INSTANCES}?labelSelector=tier%3Ddb&pageSize=30&pageToken={token}"
        ))
        .await;
    assert!(!rest.body["instances"].as_array().unwrap().is_empty());
    let mismatched = c
        .get(&format!(
            "{INSTANCES}?labelSelector=tier%3Dweb&pageToken={token}"
        ))
        .await;
    mismatched.assert_error(400);
    assert_eq!(mismatched.field(), "pageToken");
    region.stop().await;
}

#[tokio::test]
async fn bad_page_parameters_are_400_naming_the_parameter() {
    let region = TestRegion::start().await;
    let c = &region.client;
    c.create_instance("a").await;
    c.create_instance("b").await;
    let first = c.get(&format!("{INSTANCES}?pageSize=1")).await;
    let token = first.body["nextPageToken"].as_str().unwrap().to_owned();
    let forged = {
        let (payload, _) = token.split_once('.').unwrap();
        format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA")
    };
    for (query, field) in [
        ("pageSize=0".to_owned(), "pageSize"),
        ("pageSize=501".to_owned(), "pageSize"),
        ("pageSize=many".to_owned(), "pageSize"),
        ("offset=-3".to_owned(), "offset"),
        (format!("pageToken={token}&offset=1"), "pageToken"),
        (format!("pageToken={forged}"), "pageToken"),
        ("pageToken=hello".to_owned(), "pageToken"),
        ("labelSelector=a%3D%3Db%2C".to_owned(), "labelSelector"),
        ("sort=name".to_owned(), "sort"),
    ] {
        let reply = c.get(&format!("{INSTANCES}?{query}")).await;
        reply.assert_error(400);
        assert_eq!(reply.field(), field, "{query}");
    }
    let second = c
        .get(&format!("{INSTANCES}?pageSize=1&pageToken={token}"))
        .await;
    assert_eq!(second.body["instances"][0]["id"], "b");
    assert!(
        second.body.get("nextPageToken").is_none(),
        "absent on the last page"
    );
    let max = c.get(&format!("{INSTANCES}?pageSize=500")).await;
    assert_eq!(max.status, StatusCode::OK);
    region.stop().await;
}
