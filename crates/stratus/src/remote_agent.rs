//! The control plane as seen by `stratus agent` on another host: the pull protocol over HTTP,
//! failing over between the control plane's URLs.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use stratus_agent::ControlPlane;
use stratus_agent::agent::ControlPlaneError;
use stratus_types::MetadataItem;
use stratus_types::agent::{
    AssignmentBatch, AssignmentCursor, AssignmentsQuery, HostImageInfo, HostRegistration,
    InstanceMetadata, Registered, Reported, SerialEnd, SerialQuery, StatusReport, routes,
};
use uuid::Uuid;

/// A control plane reached over HTTP at one of several URLs.
pub struct HttpControlPlane {
    urls: Vec<String>,
    credential: String,
    http: reqwest::Client,
    /// The URL that answered last; tried first.
    current: AtomicUsize,
}

impl HttpControlPlane {
    pub fn new(urls: Vec<String>, credential: String) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "at least one control-plane URL is needed");
        Ok(Self {
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            credential,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            current: AtomicUsize::new(0),
        })
    }

    /// Sends the request built by `build` to each URL in turn until one answers.
    async fn call<T: DeserializeOwned>(
        &self,
        timeout: Duration,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Option<T>, ControlPlaneError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last_error = String::new();
        for i in 0..self.urls.len() {
            let index = (start + i) % self.urls.len();
            let response = build(&self.http, &self.urls[index])
                .bearer_auth(&self.credential)
                .timeout(timeout)
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    self.current.store(index, Ordering::Relaxed);
                    if r.status() == reqwest::StatusCode::NO_CONTENT {
                        return Ok(None);
                    }
                    return r
                        .json()
                        .await
                        .map(Some)
                        .map_err(|e| ControlPlaneError(format!("reading the answer: {e}")));
                }
                Ok(r) if r.status().is_server_error() => {
                    last_error = format!("{} answered {}", self.urls[index], r.status());
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(ControlPlaneError(format!("{status}: {body}")));
                }
                Err(e) => last_error = format!("{}: {e}", self.urls[index]),
            }
        }
        Err(ControlPlaneError(last_error))
    }
}

const CALL: Duration = Duration::from_secs(15);

#[async_trait]
impl ControlPlane for HttpControlPlane {
    async fn register(&self, host: &HostRegistration) -> Result<Uuid, ControlPlaneError> {
        let reply: Option<Registered> = self
            .call(CALL, |http, url| {
                http.post(format!("{url}{}", routes::REGISTER)).json(host)
            })
            .await?;
        reply
            .map(|r| r.host_id)
            .ok_or_else(|| ControlPlaneError("registration answered without a host id".into()))
    }

    async fn assignments(
        &self,
        host: Uuid,
        since: AssignmentCursor,
        wait: Duration,
    ) -> Result<AssignmentBatch, ControlPlaneError> {
        let query = AssignmentsQuery {
            since: since.revision,
            epoch: since.epoch,
            wait_ms: wait.as_millis().min(30_000) as u64,
        };
        self.call(CALL + wait, |http, url| {
            http.get(format!(
                "{url}{}",
                routes::fill(routes::ASSIGNMENTS, &[("host", &host)])
            ))
            .query(&query)
        })
        .await?
        .ok_or_else(|| ControlPlaneError("empty assignments answer".into()))
    }

    async fn report(
        &self,
        host: Uuid,
        report: &StatusReport,
    ) -> Result<Reported, ControlPlaneError> {
        let reply: Option<Reported> = self
            .call(CALL, |http, url| {
                http.post(format!(
                    "{url}{}",
                    routes::fill(routes::REPORTS, &[("host", &host)])
                ))
                .json(report)
            })
            .await?;
        reply.ok_or_else(|| ControlPlaneError("report answered without an outcome".into()))
    }

    async fn report_destroyed(&self, host: Uuid, uid: Uuid) -> Result<(), ControlPlaneError> {
        self.call::<serde_json::Value>(CALL, |http, url| {
            let path = routes::fill(routes::DESTROYED, &[("host", &host), ("uid", &uid)]);
            http.post(format!("{url}{path}"))
        })
        .await
        .map(|_| ())
    }

    async fn append_serial(
        &self,
        host: Uuid,
        uid: Uuid,
        at: u64,
        bytes: &[u8],
    ) -> Result<u64, ControlPlaneError> {
        let reply: Option<SerialEnd> = self
            .call(CALL, |http, url| {
                let path = routes::fill(routes::SERIAL, &[("host", &host), ("uid", &uid)]);
                http.post(format!("{url}{path}"))
                    .query(&SerialQuery { at })
                    .body(bytes.to_vec())
            })
            .await?;
        reply
            .map(|r| r.end)
            .ok_or_else(|| ControlPlaneError("serial answered without an end offset".into()))
    }

    async fn instance_metadata(
        &self,
        host: Uuid,
        uid: Uuid,
    ) -> Result<Vec<MetadataItem>, ControlPlaneError> {
        let reply: Option<InstanceMetadata> = self
            .call(CALL, |http, url| {
                let path = routes::fill(routes::METADATA, &[("host", &host), ("uid", &uid)]);
                http.get(format!("{url}{path}"))
            })
            .await?;
        reply
            .map(|r| r.items)
            .ok_or_else(|| ControlPlaneError("metadata answered with nothing".into()))
    }

    async fn image(&self, id: &str) -> Result<HostImageInfo, ControlPlaneError> {
        self.call(CALL, |http, url| {
            http.get(format!(
                "{url}{}",
                routes::fill(routes::IMAGE, &[("id", &id)])
            ))
        })
        .await?
        .ok_or_else(|| ControlPlaneError("empty image answer".into()))
    }

    async fn download_image(
        &self,
        id: &str,
        dest: &std::path::Path,
    ) -> Result<(), ControlPlaneError> {
        use tokio::io::AsyncWriteExt;
        let mut last_error = String::new();
        for url in &self.urls {
            let response = self
                .http
                .get(format!(
                    "{url}{}",
                    routes::fill(routes::IMAGE_CONTENT, &[("id", &id)])
                ))
                .bearer_auth(&self.credential)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            let mut response = match response {
                Ok(r) => r,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let io =
                |e: std::io::Error| ControlPlaneError(format!("writing {}: {e}", dest.display()));
            let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| ControlPlaneError(format!("downloading image {id}: {e}")))?
            {
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.sync_all().await.map_err(io)?;
            return Ok(());
        }
        Err(ControlPlaneError(last_error))
    }
}
