//! Logs, traces, and metrics for Prometheus on a listener of their own.
//!
//! **Traces.** With `[telemetry] otlp-endpoint` set, the spans of the `tracing` instrumentation
//! (each request, each database statement, each driver step on a host) are exported over
//! OTLP/HTTP as JSON, in batches, to that collector, with the process's role as the service
//! name. A host's work on an instance joins the trace of the request that changed it (see
//! `stratus_api::app::trace`). Exporting uses the same HTTP client as the rest of Stratus.
//!
//! Every part of Stratus records what it does through the `metrics` facade (requests by route
//! and status, database statements and transactions, background tasks, image imports, token
//! verifications, the agent's driver steps and metadata requests); this module installs the
//! one recorder that keeps them and serves them in Prometheus's text format at
//! `GET /metrics`. That listener is not the API's: metrics tell an outsider how busy the region
//! is and which hosts exist, so they are off unless `[telemetry] metrics-listen` names an
//! address, which an operator keeps on a management network. Gauges that describe the region
//! as it stands (instances by status and host, host capacity, pool use) are read from the
//! store at each scrape rather than kept up to date between scrapes.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use stratus_api::App;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Bucket bounds of every histogram, in seconds: from a cached read to a slow VM step.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The process's metrics recorder, installed at the first call.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the buckets are valid")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Serves `GET /metrics` on `listen` until `cancel`; with `app`, the region's gauges are read
/// at each scrape. Returns the address it listens on.
pub async fn serve_metrics(
    listen: &str,
    app: Option<Arc<App>>,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let handle = prometheus();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening for metrics on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let app = app.clone();
            async move {
                if let Some(app) = app
                    && let Err(e) = app.record_gauges().await
                {
                    tracing::warn!(error = %e, "reading the region's gauges failed");
                }
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(%addr, "serving metrics at /metrics");
    Ok(addr)
}

/// How logs are written to standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the process's `tracing` subscriber: logs filtered by `STRATUS_LOG` (default
/// `info,sqlx=warn`), and, when `otlp_endpoint` is set, span export to it under `service`.
/// Returns the tracer provider to [`shutdown_traces`] before the process ends.
pub fn init_logging(
    format: LogFormat,
    otlp_endpoint: &str,
    service: &'static str,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
    }
    .with_filter(filter);
    let provider = match otlp_endpoint {
        "" => None,
        endpoint => Some(tracer_provider(endpoint, service)?),
    };
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        // Stratus's own spans; database statements are at debug level so that they cost
        // nothing unless traces are exported.
        let targets = tracing_subscriber::filter::Targets::new()
            .with_target("stratus", tracing::Level::INFO)
            .with_target("stratus_store::metered", tracing::Level::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("stratus"))
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    Ok(provider)
}

/// Sends the spans still buffered and stops exporting.
pub async fn shutdown_traces(provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>) {
    if let Some(provider) = provider {
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

fn tracer_provider(
    endpoint: &str,
    service: &'static str,
) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    anyhow::ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "telemetry.otlp-endpoint must be an http(s) URL, not {endpoint:?}"
    );
    let client = OtlpHttpClient {
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        runtime: tokio::runtime::Handle::current(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(url)
        .with_http_client(client)
        .build()?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_millis(500))
                .build(),
        )
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(service)
                .build(),
        )
        .build())
}

/// The exporter's HTTP client: Stratus's `reqwest`, run on the process's Tokio runtime (the
/// exporter sends from a thread of its own).
#[derive(Debug)]
struct OtlpHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let response = client.execute(reqwest::Request::try_from(request)?).await?;
                let mut answer = http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    answer = answer.header(name, value);
                }
                Ok(answer.body(response.bytes().await?)?)
            })
            .await?
    }
}
