//! API benchmark: create throughput sustained for 30 s, the time from create to RUNNING on the
//! simulated hosts,
//! and GET throughput and latency at 64 concurrent connections, on the embedded SQLite store
//! and on PostgreSQL in one run. Prints a results table.
//!
//!     cargo bench -p stratus --bench api
//!
//! Each region runs in this process (SQLite in a temp dir; PostgreSQL on a server of its own
//! started for the run with every commit flushed, as SQLite does), so the load generator, the
//! server and the database share the machine's cores; the figures are for comparing changes
//! and backends on one machine.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stratus::{Config, Region};
use stratus_store::testing::PostgresCluster;

mod common;
use common::{FLEET, create_fleet, get_json, ms, percentile, sign_in};

const CONNECTIONS: usize = 64;
const GET_SECONDS: u64 = 10;
const CREATES: usize = 50;
/// How long creates are kept up for the throughput row.
const SUSTAIN: Duration = Duration::from_secs(30);
const INSTANCES: &str = "/v1/regions/local-1/projects/default/compute/instances";

/// What one backend measured, as table cells.
struct Results {
    get_rps: String,
    get_latency: String,
    create_rps: String,
    create_latency: String,
    running_latency: String,
    running_wall: String,
}

#[tokio::main]
async fn main() {
    // The region runs in this process; it returns freed memory as `stratus serve` does.
    stratus::allocator::return_freed_memory_at_once();
    let sqlite = measure("").await;
    let cluster = PostgresCluster::start_durable().expect("a PostgreSQL server for the benchmark");
    let url = cluster.create_database("bench").await.unwrap();
    let postgres = measure(&url).await;
    type Cell = fn(&Results) -> &String;
    let rows: [(&str, Cell); 6] = [
        (
            "GET instance, 64 connections, 10 s (requests/s; bare axum, same client)",
            |r| &r.get_rps,
        ),
        ("GET instance p50 / p99", |r| &r.get_latency),
        (
            "creates (201) sustained for 30 s, 16 in flight (fsync on)",
            |r| &r.create_rps,
        ),
        ("create (201) p50 / p99, 10 in flight", |r| {
            &r.create_latency
        }),
        (
            "create → RUNNING p50 / p99 (sim: prepare 200 ms + boot 300 ms)",
            |r| &r.running_latency,
        ),
        ("50 creates to all RUNNING, wall", |r| &r.running_wall),
    ];
    println!();
    println!("| measurement | SQLite | PostgreSQL |");
    println!("|---|---|---|");
    for (name, cell) in rows {
        println!("| {name} | {} | {} |", cell(&sqlite), cell(&postgres));
    }
}

/// What hammering one URL measured.
struct Hammered {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// GETs `url` from [`CONNECTIONS`] connections for [`GET_SECONDS`].
async fn hammer(http: &reqwest::Client, url: &str, token: &str) -> Hammered {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (http, url, token, stop) =
            (http.clone(), url.to_owned(), token.to_owned(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
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
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    Hammered {
        rps: latencies.len() as f64 / GET_SECONDS as f64,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        errors,
    }
}

/// A bare axum server answering every GET with `document` as JSON; its base URL.
async fn bare_handler(document: String) -> String {
    let document: &'static str = Box::leak(document.into_boxed_str());
    let app = axum::Router::new().fallback(axum::routing::get(move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            document,
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Runs every measurement on a fresh region whose store is `database_url` (empty: SQLite).
async fn measure(database_url: &str) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.host.driver = "sim".into();
    // Room for the sustained creates on the one simulated host.
    config.host.vcpus = 100_000;
    config.host.memory_mb = 100_000 * 1024;
    config.database.url = database_url.to_owned();
    // The simulated host keeps its VMs in memory: writing a file per VM change (as `serve`'s
    // own simulated host does, to survive restarts) would measure the file system.
    config.host.enabled = false;
    let region = Region::start(dir.path(), "127.0.0.1:0", config.clone())
        .await
        .unwrap();
    let driver: Arc<dyn stratus_agent::Driver> =
        Arc::new(stratus_agent::sim::SimDriver::new(None, config.sim.clone()).unwrap());
    let registration = stratus::region::host_registration(&config, driver.as_ref());
    region.app.register_host(&registration).await.unwrap();
    let host = stratus_agent::Agent::new(
        Arc::new(stratus::local_agent::LocalControlPlane(region.app.clone())),
        driver,
        registration,
        stratus::region::agent_config(&config),
    );
    let stop_host = tokio_util::sync::CancellationToken::new();
    tokio::spawn(host.run(stop_host.clone()));
    let base = format!("http://{}", region.addr);
    let (http, token) = sign_in(&base, &region.admin_key_path, CONNECTIONS).await;

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
                let i = get_json(&http, &format!("{base}{INSTANCES}/{id}"), &token).await;
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

    // GET one instance from 64 connections: a bare axum handler answering the same document
    // first (the physical limit of this request on this machine, same client), then Stratus.
    let document = http
        .get(format!("{base}{INSTANCES}/bench-000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bare = bare_handler(document).await;
    let reference = hammer(&http, &format!("{bare}{INSTANCES}/bench-000"), &token).await;
    let get = hammer(&http, &format!("{base}{INSTANCES}/bench-000"), &token).await;

    // Create throughput, sustained: 16 in flight for 30 s, every create a 201, on a network
    // with room for them all.
    create_fleet(&http, &base, &token).await;
    let started = Instant::now();
    let deadline = started + SUSTAIN;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, base, token, next) = (http.clone(), base.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let reply = http
                    .post(format!("{base}{INSTANCES}"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "id": format!("load-{i:06}"),
                        "type": "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro",
                        "nics": [{"network": FLEET}],
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    reply.status(),
                    201,
                    "{}",
                    reply.text().await.unwrap_or_default()
                );
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut sustained = Vec::new();
    for t in tasks {
        sustained.extend(t.await.unwrap());
    }
    let create_rps = sustained.len() as f64 / started.elapsed().as_secs_f64();
    sustained.sort();
    stop_host.cancel();
    region.shutdown().await;

    Results {
        get_rps: format!(
            "{:.0} ({} errors) vs bare {:.0}: {:.2}×",
            get.rps,
            get.errors,
            reference.rps,
            get.rps / reference.rps
        ),
        get_latency: format!(
            "{} / {} vs bare {} / {}: p99 {:.2}×",
            ms(get.p50),
            ms(get.p99),
            ms(reference.p50),
            ms(reference.p99),
            get.p99.as_secs_f64() / reference.p99.as_secs_f64()
        ),
        create_rps: format!(
            "{create_rps:.0}/s, p50 / p99 {} / {} ({} creates)",
            ms(percentile(&sustained, 0.5)),
            ms(percentile(&sustained, 0.99)),
            sustained.len()
        ),
        create_latency: format!(
            "{} / {}",
            ms(percentile(&create_latency, 0.5)),
            ms(percentile(&create_latency, 0.99))
        ),
        running_latency: format!(
            "{} / {}",
            ms(percentile(&running_latency, 0.5)),
            ms(percentile(&running_latency, 0.99))
        ),
        running_wall: ms(create_wall),
    }
}
