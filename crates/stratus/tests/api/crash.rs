//! `kill -9` of `stratus serve` in the middle of concurrent creates: nothing acknowledged is
//! lost, nothing is stuck, nothing is duplicated.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CONFIG: &str = r#"
[sim]
prepare-ms = 400
boot-ms = 400
[agent]
poll-wait-ms = 500
[reconciler]
interval-ms = 200
"#;

/// Starts `stratus serve` on a free port; returns the process and its base URL.
async fn serve(dir: &Path) -> (Child, String) {
    let config = dir.join("stratus.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .env("STRATUS_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.split("serving on ").nth(1) {
            return (child, rest.trim().to_owned());
        }
    }
    panic!("stratus serve exited before serving");
}

#[tokio::test]
async fn kill_9_during_50_concurrent_creates_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path()).await;
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
                client.post(INSTANCES, json!({"id": id, "type": TYPE_MICRO})),
            )
            .await;
            let created = matches!(reply, Ok(r) if r.status == StatusCode::CREATED);
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

    let (child, base) = serve(dir.path()).await;
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
    let host: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("data/sim-host.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(host.as_object().unwrap().len(), listed.len());
    drop(child);
}
