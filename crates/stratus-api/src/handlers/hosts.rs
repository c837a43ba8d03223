//! `/internal/v1/hosts…`: the pull protocol of host agents (not part of the public API).
//!
//! Agents authenticate with the region's host credential (`Authorization: Bearer …`), a secret
//! that `serve` writes to its data directory at first start; its SHA-256 is kept in the store.

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryParams, StrictJson};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use stratus_core::Error;
use stratus_types::agent::{AssignmentBatch, HostRegistration, ReportOutcome, StatusReport};
use uuid::Uuid;

/// Longest wait of an assignments poll.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A request from a host agent holding the host credential.
pub struct HostAgent;

impl FromRequestParts<Arc<App>> for HostAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated("host agents must present the host credential".into())
            })?;
        app.check_host_credential(secret.trim()).await?;
        Ok(HostAgent)
    }
}

impl crate::extract::RequestBody for HostRegistration {}
impl crate::extract::RequestBody for StatusReport {}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub host_id: Uuid,
}

#[derive(Serialize, Deserialize)]
pub struct Reported {
    pub outcome: ReportOutcome,
}

#[derive(Serialize, Deserialize)]
pub struct SerialEnd {
    pub end: u64,
}

pub async fn register(
    State(app): State<Arc<App>>,
    _: HostAgent,
    StrictJson(body): StrictJson<HostRegistration>,
) -> ApiResult<Json<Registered>> {
    Ok(Json(Registered {
        host_id: app.register_host(&body).await?,
    }))
}

pub async fn assignments(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(host): Path<Uuid>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<AssignmentBatch>> {
    let params = QueryParams::parse(query.as_deref(), &["since", "waitMs"])?;
    let since = params.integer("since", 0, u64::MAX)?.unwrap_or(0);
    let wait = params
        .integer("waitMs", 0, MAX_WAIT.as_millis() as u64)?
        .unwrap_or(0);
    Ok(Json(
        app.host_assignments(host, since, Duration::from_millis(wait))
            .await?,
    ))
}

pub async fn report(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(host): Path<Uuid>,
    StrictJson(body): StrictJson<StatusReport>,
) -> ApiResult<Json<Reported>> {
    Ok(Json(Reported {
        outcome: app.host_report(host, &body).await?,
    }))
}

pub async fn destroyed(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path((host, uid)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    app.host_destroyed(host, uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn serial(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path((host, uid)): Path<(Uuid, Uuid)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Json<SerialEnd>> {
    let params = QueryParams::parse(query.as_deref(), &["at"])?;
    let at = params
        .integer("at", 0, u64::MAX)?
        .ok_or_else(|| Error::invalid("at", "the offset of the bytes is required"))?;
    Ok(Json(SerialEnd {
        end: app.host_serial(host, uid, at, &body).await?,
    }))
}

/// What a host needs to fetch an image: format, size, checksum.
pub async fn image(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let image = app.host_image(&id).await?;
    Ok(Json(serde_json::json!({
        "id": id,
        "format": image.format,
        "sha256": image.sha256,
        "sizeBytes": image.size_bytes,
    })))
}

/// The image file, streamed.
pub async fn image_content(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    let image = app.host_image(&id).await?;
    let file = tokio::fs::File::open(&image.file).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Another replica imported it; the agent asks the next control-plane URL.
            Error::Unavailable(format!("image {id} is not in this replica's image store"))
        } else {
            Error::internal(format!("opening image {id} at {}: {e}", image.file))
        }
    })?;
    let length = file
        .metadata()
        .await
        .map_err(|e| Error::internal(format!("image {id}: {e}")))?
        .len();
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(axum::response::Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .expect("a valid response"))
}
