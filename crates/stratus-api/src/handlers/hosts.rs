//! `/internal/v1/hosts…`: the pull protocol of host agents (not part of the public API).
//!
//! Agents authenticate with the region's host credential (`Authorization: Bearer …`), a secret
//! that `serve` writes to its data directory at first start; its SHA-256 is kept in the store.

use crate::app::{App, ClientGone};
use crate::error::{ApiError, ApiResult};
use crate::extract::StrictJson;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use std::sync::Arc;
use std::time::Duration;
use stratus_core::Error;
use stratus_types::agent::{
    AssignmentBatch, AssignmentCursor, AssignmentsQuery, HostImageInfo, HostRegistration,
    InstanceMetadata, Registered, Reported, SerialEnd, SerialQuery, StatusReport, routes,
};
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

/// The protocol's routes, on the router of the whole API (the region's state).
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(routes::REGISTER, post(register))
        .route(routes::ASSIGNMENTS, get(assignments))
        .route(routes::REPORTS, post(report))
        .route(routes::DESTROYED, post(destroyed))
        .route(routes::SERIAL, post(serial))
        .route(routes::METADATA, get(metadata))
        .route(routes::IMAGE, get(image))
        .route(routes::IMAGE_CONTENT, get(image_content))
}

async fn register(
    State(app): State<Arc<App>>,
    _: HostAgent,
    StrictJson(body): StrictJson<HostRegistration>,
) -> ApiResult<Json<Registered>> {
    Ok(Json(Registered {
        host_id: app.register_host(&body).await?,
    }))
}

async fn assignments(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(host): Path<Uuid>,
    Query(query): Query<AssignmentsQuery>,
    axum::Extension(gone): axum::Extension<ClientGone>,
) -> ApiResult<Json<AssignmentBatch>> {
    let wait = Duration::from_millis(query.wait_ms).min(MAX_WAIT);
    let since = AssignmentCursor {
        epoch: query.epoch,
        revision: query.since,
    };
    Ok(Json(app.host_assignments(host, since, wait, &gone).await?))
}

async fn report(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(host): Path<Uuid>,
    StrictJson(body): StrictJson<StatusReport>,
) -> ApiResult<Json<Reported>> {
    Ok(Json(app.host_report(host, &body).await?))
}

async fn destroyed(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path((host, uid)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    app.host_destroyed(host, uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn serial(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path((host, uid)): Path<(Uuid, Uuid)>,
    Query(SerialQuery { at }): Query<SerialQuery>,
    body: Bytes,
) -> ApiResult<Json<SerialEnd>> {
    Ok(Json(SerialEnd {
        end: app.host_serial(host, uid, at, &body).await?,
    }))
}

/// The metadata of an instance on the asking host.
async fn metadata(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path((host, uid)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<InstanceMetadata>> {
    Ok(Json(InstanceMetadata {
        items: app.host_instance_metadata(host, uid).await?,
    }))
}

/// What a host needs to fetch an image: format, size, checksum.
async fn image(
    State(app): State<Arc<App>>,
    _: HostAgent,
    Path(id): Path<String>,
) -> ApiResult<Json<HostImageInfo>> {
    let image = app.host_image(&id).await?;
    Ok(Json(HostImageInfo {
        id,
        format: image.format.as_str().to_owned(),
        sha256: image.sha256,
        size_bytes: image.size_bytes,
    }))
}

/// The image file, streamed.
async fn image_content(
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
