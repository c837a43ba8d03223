//! `/metrics` as Prometheus reads it: served on its own listener only when configured, in the
//! text format a Prometheus parser accepts, with counters that move when requests and
//! instances do and gauges that say what the region holds.

use crate::support::*;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use reqwest::StatusCode;
use std::time::Duration;

/// The route templates requests are counted under.
const INSTANCES_ROUTE: &str = "/v1/regions/{region}/projects/{project}/compute/instances";
const INSTANCE_ROUTE: &str = "/v1/regions/{region}/projects/{project}/compute/instances/{id}";

type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let reply = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(
        reply.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.text().await.unwrap();
    openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e:?}):\n{text}"))
}

/// The values of `metric`'s samples whose labels include every pair of `labels`: counter and
/// gauge values, histogram observation counts.
fn values(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let Some(family) = scrape.families.get(metric) else {
        return vec![];
    };
    family
        .iter_samples()
        .filter(|s| {
            let set = s
                .get_labelset()
                .expect("samples of a family have its labels");
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
            PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            PrometheusValue::Summary(_) => 0.0,
        })
        .collect()
}

/// The sum of [`values`].
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    values(scrape, metric, labels).iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_requests_and_instances() {
    let mut config = fast_config();
    config.telemetry.metrics_listen = "127.0.0.1:0".into();
    let region = TestRegion::with_config(config).await;
    let addr = region
        .region
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics are served");
    assert_ne!(
        addr.port(),
        region.region.as_ref().unwrap().addr.port(),
        "metrics have a listener of their own"
    );
    let c = &region.client;
    let before = scrape(addr).await;
    let creates = [
        ("route", INSTANCES_ROUTE),
        ("method", "POST"),
        ("status", "201"),
    ];
    let created_before = total(&before, "stratus_http_requests_total", &creates);

    c.create_instance("m-1").await;
    c.create_instance("m-2").await;
    c.wait_status("m-1", "RUNNING", Duration::from_secs(10))
        .await;
    c.wait_status("m-2", "RUNNING", Duration::from_secs(10))
        .await;
    let missing = c.get(&format!("{INSTANCES}/nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let after = scrape(addr).await;
    assert!(
        total(&after, "stratus_http_requests_total", &creates) >= created_before + 2.0,
        "two creates counted"
    );
    assert!(
        total(
            &after,
            "stratus_http_requests_total",
            &[
                ("route", INSTANCE_ROUTE),
                ("method", "GET"),
                ("status", "404")
            ]
        ) >= 1.0
    );
    assert!(
        total(
            &after,
            "stratus_http_request_duration_seconds",
            &[("route", INSTANCES_ROUTE)]
        ) >= 2.0
    );
    assert_eq!(
        total(
            &after,
            "stratus_instances",
            &[("status", "RUNNING"), ("host", "local")]
        ),
        2.0,
        "the gauge says what the store holds"
    );
    assert_eq!(
        total(
            &after,
            "stratus_host_vcpus",
            &[("host", "local"), ("state", "allocated")]
        ),
        4.0
    );
    assert_eq!(total(&after, "stratus_host_up", &[("host", "local")]), 1.0);
    assert!(
        total(
            &after,
            "stratus_token_verifications_total",
            &[("outcome", "accepted")]
        ) >= 5.0
    );
    assert!(
        total(
            &after,
            "stratus_db_statement_duration_seconds",
            &[("database", "sqlite")]
        ) > 0.0
    );
    assert!(
        total(
            &after,
            "stratus_db_transaction_duration_seconds",
            &[("database", "sqlite"), ("outcome", "committed")]
        ) >= 2.0
    );
    assert!(!values(&after, "stratus_db_pool_connections", &[("pool", "write")]).is_empty());
    assert!(total(&after, "stratus_agent_vm_starts_total", &[]) >= 2.0);
    assert!(
        total(
            &after,
            "stratus_agent_step_duration_seconds",
            &[("step", "boot"), ("outcome", "ok")]
        ) >= 2.0
    );
    assert!(
        total(
            &after,
            "stratus_background_task_duration_seconds",
            &[("task", "instance-watchdog")]
        ) >= 1.0
    );

    // Deleting moves the gauge back down: it is read at each scrape, not left at its peak.
    for id in ["m-1", "m-2"] {
        c.delete(&format!("{INSTANCES}/{id}")).await;
        c.wait_gone(id, Duration::from_secs(10)).await;
    }
    let gone = scrape(addr).await;
    assert_eq!(
        total(
            &gone,
            "stratus_instances",
            &[("status", "RUNNING"), ("host", "local")]
        ),
        0.0
    );
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_configured() {
    let region = TestRegion::start().await;
    assert!(region.region.as_ref().unwrap().metrics_addr.is_none());
    let on_api = region.client.get("/metrics").await;
    on_api.assert_error(404);
    region.stop().await;
}
