//! Region-scale benchmark: `stratus serve` in a process of its own, 1,000 simulated hosts in
//! this process (each an agent polling the server over HTTP, as `stratus agent` does), loaded
//! with 100,000 instances through the API, on the embedded SQLite store and on PostgreSQL.
//! Prints a results table:
//!
//! - creates per second over the first 1,000 creates (into an idle region); creates per second
//!   over each of the next three windows of 1,000 (the rate at 1,000 instances is their
//!   median) and each of the last three (with ~97,000 to ~100,000 instances present), the ratio
//!   of the two medians, and create (201) p50 / p99 over each three; the rate of each 10,000
//!   in between, to show the trend a single window of about a second cannot;
//! - create → RUNNING, the control plane's own overhead: every simulated step takes 0 ms, one
//!   create at a time;
//! - with 100,000 instances: GET of one instance, LIST of a page of 50, LIST of a label-selected
//!   page (1 % of the instances match), each p50 / p99 from 8 connections;
//! - watch latency: 1,000 watchers of one instance's label, the time from sending a PATCH to
//!   each watcher's event, p50 / p99 over 20 writes;
//! - resident memory of the server process, and of this one (simulated hosts and client).
//!
//! Run it with `cargo bench -p stratus --bench scale`. `STRATUS_SCALE_INSTANCES`,
//! `STRATUS_SCALE_HOSTS` change the region's size, and `STRATUS_SCALE_BACKENDS=sqlite` (or
//! `postgres`) measures one backend only.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus::Config;
use stratus_client::WatchOptions;
use stratus_store::testing::PostgresCluster;
use stratus_types::WatchEventType;
use stratus_types::agent::HostRegistration;

mod common;
use common::{FLEET, create_fleet, get_json, ms, percentile, sign_in};

const INSTANCES: &str = "/v1/regions/local-1/projects/default/compute/instances";
const TYPE: &str = "/v1/regions/local-1/zones/local-1a/instance-types/e2-micro";
const HOSTS: &str = "/v1/regions/local-1/zones/local-1a/hosts";
/// Creates in flight while loading.
const LOADERS: usize = 32;
/// Windows measured at each end of the load: the rate there is their median, so that one
/// window caught by a stall (a checkpoint, the scheduler) does not decide it.
const SAMPLED_WINDOWS: usize = 3;
/// Creates between two progress lines while loading.
const PROGRESS_EVERY: usize = 10_000;
/// Creates per measured window (first and last).
const WINDOW: usize = 1000;
const READERS: usize = 8;
const READ_SECONDS: u64 = 5;
const WATCHERS: usize = 1000;
const WATCHED_WRITES: usize = 20;
const RUNNING_SAMPLES: usize = 200;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn p50_p99(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "{} / {}",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99))
    )
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    rss_of("/proc/self/status")
}

/// The resident memory a `/proc/…/status` file tells, in MiB.
fn rss_of(status_file: &str) -> f64 {
    status_field(status_file, "VmRSS:")
}

/// A memory figure (in kB) of a `/proc/…/status` file, in MiB.
fn status_field(status_file: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(status_file).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Results {
    rows: Vec<(String, String)>,
}

#[tokio::main]
async fn main() {
    let instances = setting("STRATUS_SCALE_INSTANCES", 100_000);
    let hosts = setting("STRATUS_SCALE_HOSTS", 1000);
    let backends = std::env::var("STRATUS_SCALE_BACKENDS").unwrap_or("sqlite,postgres".into());
    let mut columns = Vec::new();
    if backends.contains("sqlite") {
        columns.push(("SQLite", measure("", hosts, instances).await));
    }
    if backends.contains("postgres") {
        let cluster = PostgresCluster::start_durable().expect("a PostgreSQL server");
        let url = cluster.create_database("scale").await.unwrap();
        columns.push(("PostgreSQL", measure(&url, hosts, instances).await));
    }
    println!();
    println!("{hosts} simulated hosts, {instances} instances");
    println!();
    print!("| measurement |");
    for (name, _) in &columns {
        print!(" {name} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(columns.len()));
    for row in 0..columns[0].1.rows.len() {
        print!("| {} |", columns[0].1.rows[row].0);
        for (_, results) in &columns {
            print!(" {} |", results.rows[row].1);
        }
        println!();
    }
}

/// Creates instances `from..to` with `LOADERS` in flight; answers the creates per second and
/// every create's latency.
/// Loads [`SAMPLED_WINDOWS`] windows of [`WINDOW`] creates from instance `from` on: the rate
/// of each, and the latencies of all.
async fn windows(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    from: usize,
) -> (Vec<f64>, Vec<Duration>) {
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for k in 0..SAMPLED_WINDOWS {
        let start = from + k * WINDOW;
        let (rate, took) = load(http, base, token, start, start + WINDOW).await;
        rates.push(rate);
        latencies.extend(took);
    }
    (rates, latencies)
}

/// The middle of `values` (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn load(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    from: usize,
    to: usize,
) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let mut workers = Vec::new();
    for _ in 0..LOADERS {
        let (http, base, token, next) = (
            http.clone(),
            base.to_owned(),
            token.to_owned(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= to {
                    return latencies;
                }
                let t0 = Instant::now();
                let reply = http
                    .post(format!("{base}{INSTANCES}"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "id": format!("vm-{i:06}"),
                        "type": TYPE,
                        "labels": {"group": format!("g{}", i % 100)},
                        "nics": [{"network": FLEET}],
                    }))
                    .send()
                    .await
                    .unwrap();
                let status = reply.status();
                assert_eq!(status, 201, "{}", reply.text().await.unwrap_or_default());
                latencies.push(t0.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let rate = (to - from) as f64 / started.elapsed().as_secs_f64();
    (rate, latencies)
}

/// GETs `path` from [`READERS`] connections for [`READ_SECONDS`]; every latency.
async fn read(http: &reqwest::Client, url: &str, token: &str) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(READ_SECONDS);
    let mut workers = Vec::new();
    for _ in 0..READERS {
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let reply = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(reply.status(), 200);
                reply.bytes().await.unwrap();
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    latencies
}

/// `stratus serve` in a process of its own (its memory is the server's alone), without a
/// host of its own; killed when dropped.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    async fn start(data_dir: &std::path::Path, database_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
        command
            .args([
                "serve",
                "--no-local-agent",
                "--listen",
                &listen,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        if !database_url.is_empty() {
            command.args(["--database-url", database_url]);
        }
        let child = command.spawn().expect("stratus serve starts");
        let base = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{base}/healthz")).await.is_err()
            || !data_dir.join("admin-api-key").exists()
        {
            assert!(Instant::now() < deadline, "stratus serve did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, base }
    }

    /// The server process's resident memory, in MiB.
    fn rss_mib(&self) -> f64 {
        rss_of(&format!("/proc/{}/status", self.child.id()))
    }

    /// The part of it that is the server's own (not pages of the database file it maps).
    fn anon_mib(&self) -> f64 {
        status_field(&format!("/proc/{}/status", self.child.id()), "RssAnon:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` simulated hosts in this process, each its own agent polling the server over HTTP
/// as `stratus agent` does, with 0 ms steps. Cancel the token to stop them.
fn start_sim_hosts(
    base: &str,
    credential_file: &std::path::Path,
    count: usize,
) -> tokio_util::sync::CancellationToken {
    let credential = std::fs::read_to_string(credential_file).unwrap();
    let mut config = Config::default();
    config.host.gpus = vec![];
    config.sim.prepare_ms = 0;
    config.sim.boot_ms = 0;
    config.sim.stop_ms = 0;
    config.sim.pause_ms = 0;
    let cancel = tokio_util::sync::CancellationToken::new();
    for n in 1..=count {
        let control_plane = Arc::new(
            stratus::remote_agent::HttpControlPlane::new(
                vec![base.to_owned()],
                credential.trim().to_owned(),
            )
            .unwrap(),
        );
        let driver: Arc<dyn stratus_agent::Driver> =
            Arc::new(stratus_agent::sim::SimDriver::new(None, config.sim.clone()).unwrap());
        let registration = HostRegistration {
            name: format!("sim-{n:04}"),
            ..stratus::region::host_registration(&config, driver.as_ref())
        };
        let agent = stratus_agent::Agent::new(
            control_plane,
            driver,
            registration,
            stratus::region::agent_config(&config),
        );
        tokio::spawn(agent.run(cancel.clone()));
    }
    cancel
}

/// Waits until `count` hosts are registered.
async fn wait_for_hosts(http: &reqwest::Client, base: &str, token: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut seen = 0;
        let mut page = String::new();
        loop {
            let listed = get_json(http, &format!("{base}{HOSTS}?pageSize=500{page}"), token).await;
            seen += listed["hosts"].as_array().map_or(0, Vec::len);
            match listed["nextPageToken"].as_str() {
                Some(next) => page = format!("&pageToken={next}"),
                None => break,
            }
        }
        if seen >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} of {count} hosts registered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn measure(database_url: &str, hosts: usize, instances: usize) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), database_url).await;
    let base = server.base.clone();
    let started = Instant::now();
    let agents = start_sim_hosts(&base, &dir.path().join("host-credential"), hosts);
    let (http, token) = sign_in(&base, &dir.path().join("admin-api-key"), 256).await;
    wait_for_hosts(&http, &base, &token, hosts).await;
    let startup = started.elapsed();
    create_fleet(&http, &base, &token).await;
    let mut rows = Vec::new();
    let rss_empty = server.rss_mib();
    let rss_bench_empty = rss_mib();

    // Create → RUNNING with nothing else going on: the control plane's overhead.
    let typed = stratus_client::Client::new(&base)
        .unwrap()
        .with_token(&token);
    let project = typed.instances("local-1", "default");
    let mut running = Vec::new();
    for i in 0..RUNNING_SAMPLES {
        let id = format!("solo-{i:03}");
        let mut watch = project
            .watch(&WatchOptions {
                id: Some(id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        // The listing (nothing yet) ends with a bookmark.
        watch.next().await.unwrap();
        let t0 = Instant::now();
        let reply = http
            .post(format!("{base}{INSTANCES}"))
            .bearer_auth(&token)
            .json(&json!({"id": id, "type": TYPE}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        loop {
            let event = watch.next().await.unwrap().expect("the watch ended");
            if event
                .object
                .is_some_and(|i| i.lifecycle.status.as_str() == "RUNNING")
            {
                break;
            }
        }
        running.push(t0.elapsed());
    }

    eprintln!(
        "started in {:.1} s; create → RUNNING measured",
        startup.as_secs_f64()
    );
    // The first creates find the hosts idle (none of the reports, console output and polls
    // that follow each create yet): the rate at 1,000 instances is the next window's.
    assert!(
        instances >= (2 * SAMPLED_WINDOWS + 1) * WINDOW,
        "a region of at least {} instances",
        (2 * SAMPLED_WINDOWS + 1) * WINDOW
    );
    let (cold_rate, _) = load(&http, &base, &token, 0, WINDOW).await;
    let (first_rates, first) = windows(&http, &base, &token, WINDOW).await;
    let loading = Instant::now();
    let bulk_end = instances - SAMPLED_WINDOWS * WINDOW;
    let mut trend = Vec::new();
    let mut at = (SAMPLED_WINDOWS + 1) * WINDOW;
    while at < bulk_end {
        let to = (at + PROGRESS_EVERY).min(bulk_end);
        let (rate, _) = load(&http, &base, &token, at, to).await;
        eprintln!("{to} instances: {rate:.0} creates/s");
        trend.push(format!("{rate:.0}"));
        at = to;
    }
    let bulk = loading.elapsed();
    let (last_rates, last) = windows(&http, &base, &token, bulk_end).await;
    let (first_rate, last_rate) = (median(&first_rates), median(&last_rates));
    let rss_loaded = server.rss_mib();
    let anon_loaded = server.anon_mib();
    let rss_bench_loaded = rss_mib();

    eprintln!(
        "loaded: first {first_rate:.0}/s, bulk {:.0} s, last {last_rate:.0}/s, RSS {rss_loaded:.0} MiB",
        bulk.as_secs_f64()
    );
    let middle = format!("{base}{INSTANCES}/vm-{:06}", instances / 2);
    let get = read(&http, &middle, &token).await;
    let page = read(&http, &format!("{base}{INSTANCES}?pageSize=50"), &token).await;
    let selected = read(
        &http,
        &format!("{base}{INSTANCES}?pageSize=50&labelSelector=group%3Dg42"),
        &token,
    )
    .await;

    // Watch latency: every watcher follows the probe's label; each write reaches all of them.
    let probe = http
        .post(format!("{base}{INSTANCES}"))
        .bearer_auth(&token)
        .json(&json!({"id": "probe", "type": TYPE, "labels": {"probe": "yes"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 201);
    let (marks, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let ready = Arc::new(tokio::sync::Barrier::new(WATCHERS + 1));
    for _ in 0..WATCHERS {
        let (base, token, marks, ready) =
            (base.clone(), token.clone(), marks.clone(), ready.clone());
        tokio::spawn(async move {
            let client = stratus_client::Client::new(&base)
                .unwrap()
                .with_token(&token);
            let mut watch = client
                .instances("local-1", "default")
                .watch(&WatchOptions {
                    label_selector: Some("probe=yes".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            loop {
                let event = watch.next().await.unwrap().expect("the watch ended");
                if event.event_type == WatchEventType::Bookmark {
                    break;
                }
            }
            ready.wait().await;
            while let Ok(Some(event)) = watch.next().await {
                if let Some(mark) = event
                    .object
                    .and_then(|i| i.labels.get("mark").map(str::to_owned))
                {
                    let _ = marks.send((mark, Instant::now()));
                }
            }
        });
    }
    drop(marks);
    // A watcher that fails never arrives: give up rather than wait for ever.
    tokio::time::timeout(Duration::from_secs(300), ready.wait())
        .await
        .expect("every watcher listed its selection within 5 minutes");
    let rss_watched = server.rss_mib();
    let anon_watched = server.anon_mib();
    let mut watch_latency = Vec::new();
    for n in 0..WATCHED_WRITES {
        let mark = format!("m{n}");
        let t0 = Instant::now();
        let reply = http
            .patch(format!("{base}{INSTANCES}/probe"))
            .bearer_auth(&token)
            .json(&json!({"labels": {"probe": "yes", "mark": mark}}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let mut heard = 0;
        while heard < WATCHERS {
            let (got, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
                .await
                .expect("watchers stopped hearing")
                .expect("every watcher ended");
            if got == mark {
                heard += 1;
                watch_latency.push(at - t0);
            }
        }
    }
    agents.cancel();
    drop(server);

    let row = |name: &str, value: String| (name.to_owned(), value);
    rows.push(row(
        &format!("{hosts} simulated hosts registered over HTTP"),
        format!("{:.1} s", startup.as_secs_f64()),
    ));
    rows.push(row(
        "create → RUNNING p50 / p99, sim steps 0 ms (control-plane overhead)",
        p50_p99(running),
    ));
    rows.push(row(
        &format!("creates/s, first {WINDOW} into an empty region ({LOADERS} in flight)"),
        format!("{cold_rate:.0}"),
    ));
    let listed = |rates: &[f64]| {
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(row(
        &format!(
            "creates/s at ≈{WINDOW}–{} present: median of {SAMPLED_WINDOWS} windows of {WINDOW} (each)",
            (SAMPLED_WINDOWS + 1) * WINDOW
        ),
        format!("{first_rate:.0} ({})", listed(&first_rates)),
    ));
    rows.push(row(
        &format!(
            "creates/s at ≈{bulk_end}–{instances} present: median of the last {SAMPLED_WINDOWS} (each)"
        ),
        format!(
            "{last_rate:.0} ({}); {:.2}× the rate at {WINDOW}",
            listed(&last_rates),
            last_rate / first_rate
        ),
    ));
    rows.push(row(
        &format!("create (201) p50 / p99, first {SAMPLED_WINDOWS} windows"),
        p50_p99(first),
    ));
    rows.push(row(
        &format!("create (201) p50 / p99, last {SAMPLED_WINDOWS} windows"),
        p50_p99(last),
    ));
    rows.push(row(
        &format!(
            "loading the {} creates between, wall; creates/s of each {PROGRESS_EVERY}",
            bulk_end - (SAMPLED_WINDOWS + 1) * WINDOW
        ),
        format!("{:.0} s; {}", bulk.as_secs_f64(), trend.join(", ")),
    ));
    rows.push(row(
        &format!("GET instance p50 / p99, {instances} present, {READERS} connections"),
        p50_p99(get),
    ));
    rows.push(row("LIST page of 50 p50 / p99", p50_p99(page)));
    rows.push(row(
        "LIST label-selected page of 50 (1 % match) p50 / p99",
        p50_p99(selected),
    ));
    rows.push(row(
        &format!("watch write → event p50 / p99, {WATCHERS} watchers"),
        p50_p99(watch_latency),
    ));
    rows.push(row(
        "server RSS: empty / loaded / with 1000 watchers",
        format!("{rss_empty:.0} / {rss_loaded:.0} / {rss_watched:.0} MiB"),
    ));
    rows.push(row(
        "of which its own memory (RssAnon, not mapped database pages): loaded / with watchers",
        format!("{anon_loaded:.0} / {anon_watched:.0} MiB"),
    ));
    rows.push(row(
        "bench process RSS (sim hosts and client): empty / loaded",
        format!("{rss_bench_empty:.0} / {rss_bench_loaded:.0} MiB"),
    ));
    Results { rows }
}
