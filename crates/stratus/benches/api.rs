//! API benchmark: GET throughput and latency at 64 concurrent connections, and the time from
//! create to RUNNING on the simulated host. Prints a results table.
//!
//!     cargo bench -p stratus --bench api
//!
//! The region runs in this process on SQLite in a temp dir, so the load generator and the
//! server share the machine's cores; the figures are for comparing changes on one machine.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stratus::{Config, Region};

const CONNECTIONS: usize = 64;
const GET_SECONDS: u64 = 10;
const CREATES: usize = 50;
const INSTANCES: &str = "/v1/regions/local-1/projects/default/compute/instances";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.host.driver = "sim".into();
    let region = Region::start(dir.path(), "127.0.0.1:0", config)
        .await
        .unwrap();
    let base = format!("http://{}", region.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let key = std::fs::read_to_string(&region.admin_key_path).unwrap();
    let token: serde_json::Value = http
        .post(format!("{base}/v1/regions/global/auth/token"))
        .json(&json!({"grant_type": "api_key", "api_key": key.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // Create → RUNNING, ten creates in flight at a time.
    let started = Instant::now();
    let mut tasks = Vec::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(10));
    for i in 0..CREATES {
        let (http, base, token, gate) = (http.clone(), base.clone(), token.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let t0 = Instant::now();
            let id = format!("bench-{i:03}");
            let reply = http
                .post(format!("{base}{INSTANCES}"))
                .bearer_auth(&token)
                .json(&json!({"id": id, "type": "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro"}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 201);
            let create = t0.elapsed();
            loop {
                let i: serde_json::Value = http
                    .get(format!("{base}{INSTANCES}/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if i["lifecycle"]["status"] == "RUNNING" {
                    return (create, t0.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let mut create_latency = Vec::new();
    let mut running_latency = Vec::new();
    for t in tasks {
        let (create, running) = t.await.unwrap();
        create_latency.push(create);
        running_latency.push(running);
    }
    let create_wall = started.elapsed();
    create_latency.sort();
    running_latency.sort();

    // GET one instance from 64 connections.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (http, base, token, stop) = (http.clone(), base.clone(), token.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = http
                    .get(format!("{base}{INSTANCES}/bench-000"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status() == 200)
                    .unwrap_or(false);
                latencies.push(t0.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(GET_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let mut get_latency = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        get_latency.extend(l);
        errors += e;
    }
    get_latency.sort();
    let rps = get_latency.len() as f64 / GET_SECONDS as f64;

    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| GET instance, {CONNECTIONS} connections, {GET_SECONDS} s | {rps:.0} requests/s ({errors} errors) |"
    );
    println!(
        "| GET instance p50 / p99 | {} / {} |",
        ms(percentile(&get_latency, 0.5)),
        ms(percentile(&get_latency, 0.99))
    );
    println!(
        "| create (201) p50 / p99, 10 in flight | {} / {} |",
        ms(percentile(&create_latency, 0.5)),
        ms(percentile(&create_latency, 0.99))
    );
    println!(
        "| create → RUNNING p50 / p99 (sim: prepare 200 ms + boot 300 ms) | {} / {} |",
        ms(percentile(&running_latency, 0.5)),
        ms(percentile(&running_latency, 0.99))
    );
    println!(
        "| {CREATES} creates to all RUNNING, wall | {} |",
        ms(create_wall)
    );
    region.shutdown().await;
}
