//! `kill -9` of `stratus serve` in the middle of concurrent creates: nothing acknowledged is
//! lost, nothing is stuck, nothing is duplicated.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn config() -> stratus::Config {
    let mut config = fast_config();
    config.sim.prepare_ms = 400;
    config.sim.boot_ms = 400;
    config
}

#[tokio::test]
async fn kill_9_during_50_concurrent_creates_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_serve(dir.path(), &config()).await;
    let key = std::fs::read_to_string(dir.path().join("data/admin-api-key")).unwrap();
    let client = Client::login(&base, key.trim()).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..50 {
        let client = client.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let id = format!("crash-{i:02}");
            let reply = tokio::time::timeout(
                Duration::from_secs(10),
                client.try_send(
                    reqwest::Method::POST,
                    INSTANCES,
                    Some(json!({"id": id, "type": TYPE_MICRO})),
                    &[],
                ),
            )
            .await;
            let created = matches!(reply, Ok(Some(r)) if r.status == StatusCode::CREATED);
            let _ = tx.send((id, created));
        });
    }
    drop(tx);
    // Kill the server once a part of the creates has been answered.
    let mut acknowledged = BTreeSet::new();
    let mut answered = 0;
    while let Some((id, created)) = rx.recv().await {
        answered += 1;
        if created {
            acknowledged.insert(id);
        }
        if answered == 5 {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
    assert!(
        acknowledged.len() >= 5,
        "{} creates acknowledged",
        acknowledged.len()
    );
    eprintln!(
        "{} of 50 creates acknowledged before the kill",
        acknowledged.len()
    );

    let (child, base) = spawn_serve(dir.path(), &config()).await;
    let client = Client::login(&base, key.trim()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let page = client.get(&format!("{INSTANCES}?pageSize=500")).await;
        let instances = page.body["instances"].as_array().unwrap().clone();
        let settled = instances
            .iter()
            .all(|i| i["lifecycle"]["status"] == "RUNNING");
        if settled || Instant::now() > deadline {
            break instances;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: Vec<&str> = listed.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no instance is duplicated");
    for id in &acknowledged {
        assert!(unique.contains(id.as_str()), "acknowledged {id} was lost");
    }
    for i in &listed {
        assert_eq!(i["lifecycle"]["status"], "RUNNING", "stuck instance: {i:#}");
    }
    // One VM on the host per instance: none was provisioned twice.
    let vms = std::fs::read_dir(dir.path().join("data/sim-host.d"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(vms, listed.len());
    drop(child);
}
