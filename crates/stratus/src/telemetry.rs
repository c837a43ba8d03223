//! Metrics for Prometheus, on a listener of their own.
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
