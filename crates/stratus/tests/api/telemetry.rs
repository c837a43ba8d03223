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

/// One exported span, as an OTLP collector receives it.
#[derive(Clone, Debug)]
struct ExportedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: std::collections::BTreeMap<String, String>,
}

/// A tiny OTLP/HTTP collector: keeps every span posted to `/v1/traces` as JSON.
async fn start_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<ExportedSpan>>>) {
    use axum::routing::post;
    use serde_json::Value as Json;
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = spans.clone();
    let text = |v: &Json| v.as_str().unwrap_or_default().to_owned();
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let export: Json = serde_json::from_slice(&body).expect("OTLP JSON");
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    let service = resource["resource"]["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "service.name")
                        .map(|a| text(&a["value"]["stringValue"]))
                        .unwrap_or_default();
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let attributes = span["attributes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|a| {
                                    let value = &a["value"];
                                    let value = value
                                        .get("stringValue")
                                        .map(text)
                                        .unwrap_or_else(|| value.to_string());
                                    (text(&a["key"]), value)
                                })
                                .collect();
                            kept.lock().unwrap().push(ExportedSpan {
                                service: service.clone(),
                                trace_id: text(&span["traceId"]),
                                span_id: text(&span["spanId"]),
                                parent_span_id: text(&span["parentSpanId"]),
                                name: text(&span["name"]),
                                attributes,
                            });
                        }
                    }
                }
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_is_one_trace_from_the_api_through_the_store_to_the_hosts_driver() {
    let (collector, spans) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config();
    config.telemetry.otlp_endpoint = collector.clone();
    config.host.enabled = false;
    let (_serve, base) = spawn_serve(dir.path(), &config).await;
    let agent_dir = tempfile::tempdir().unwrap();
    let _agent = spawn_sim_agent_with(
        "traced-host",
        agent_dir.path(),
        &[&base],
        &dir.path().join("data/host-credential"),
        &config,
    );
    let key = std::fs::read_to_string(dir.path().join("data/admin-api-key")).unwrap();
    let c = Client::login(&base, key.trim()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let created = loop {
        let reply = c
            .post(
                INSTANCES,
                serde_json::json!({"id": "traced", "type": TYPE_SMALL}),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no host joined: {:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let request_id = created.request_id.clone().expect("X-Request-Id");
    c.wait_status("traced", "RUNNING", Duration::from_secs(20))
        .await;

    // The request's span, its statements and the host's boot arrive within a few batches.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (request, in_trace) = loop {
        let seen = spans.lock().unwrap().clone();
        let request = seen.iter().find(|s| {
            s.name.starts_with("POST ") && s.attributes.get("request_id") == Some(&request_id)
        });
        if let Some(request) = request {
            let in_trace: Vec<ExportedSpan> = seen
                .iter()
                .filter(|s| s.trace_id == request.trace_id)
                .cloned()
                .collect();
            if in_trace.iter().any(|s| s.name == "driver.boot") {
                break (request.clone(), in_trace);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trace of request {request_id} never reached the host; spans: {:#?}",
            seen.iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(request.service, "stratus");
    assert_eq!(request.name, format!("POST {INSTANCES}"));
    let statements: Vec<&ExportedSpan> = in_trace
        .iter()
        .filter(|s| {
            s.name == "db.write"
                && s.attributes.get("db.system").map(String::as_str) == Some("sqlite")
        })
        .collect();
    assert!(
        !statements.is_empty(),
        "the create's statements are in its trace: {in_trace:#?}"
    );
    assert!(
        statements
            .iter()
            .any(|s| s.attributes["db.statement"].starts_with("INSERT INTO instances")),
        "{statements:#?}"
    );
    let by_id: std::collections::BTreeMap<&str, &ExportedSpan> =
        in_trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    // Every statement descends from the request's span.
    for statement in &statements {
        let mut at = *statement;
        while at.span_id != request.span_id {
            at = by_id
                .get(at.parent_span_id.as_str())
                .unwrap_or_else(|| panic!("{statement:#?} is not under the request"));
        }
    }
    for step in ["driver.prepare", "driver.boot"] {
        let span = in_trace
            .iter()
            .find(|s| s.name == step)
            .unwrap_or_else(|| panic!("no {step} in the trace: {in_trace:#?}"));
        assert_eq!(span.service, "stratus-agent", "{span:#?}");
        assert_eq!(span.attributes["request_id"], request_id, "{span:#?}");
        assert_eq!(span.attributes["id"], "traced");
    }
}
