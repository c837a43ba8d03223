//! `/v1/regions/{region}/projects/{project}/compute/instances…`

use super::with_etag;
use crate::app::App;
use crate::app::{Caller, ClientGone, InstanceFilters, InstanceRef, Precondition};
use crate::error::ApiResult;
use crate::extract::{Filters, ListQuery, SerialStart, StrictJson, WaitForChange};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use stratus_core::Error;
use stratus_core::lifecycle::Action;
use stratus_types::{
    ErrorBody, Instance, InstanceAction, InstanceCreateRequest, InstanceList,
    InstanceUpdateRequest, InstanceWatchEvent, ResourceId, SerialPortOutput,
};

type Ctx = State<Arc<App>>;

fn instance<'a>(region: &'a str, project: &'a str, id: &'a str) -> InstanceRef<'a> {
    InstanceRef {
        region,
        project,
        id,
    }
}

/// List instances of a project, ordered by id.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/instances",
    operation_id = "listInstances", tag = "instances",
    params(
        ("region" = ResourceId, Path), ("project" = ResourceId, Path),
        ("pageSize" = Option<u32>, Query, description = "1 to 500, default 50", minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query, description = "nextPageToken of the previous page"),
        ("offset" = Option<u64>, Query, description = "items to skip; the response then has total (not with pageToken)"),
        ("labelSelector" = Option<String>, Query, description = "k=v,k2!=v2,k3,!k4"),
        ("watch" = Option<bool>, Query, description = "true: server-sent events of changes (text/event-stream) instead of a page: the matching instances as ADDED, a BOOKMARK, then ADDED, MODIFIED and DELETED as they happen; an ERROR (code 410) tells the watcher to list again (extension)"),
        ("resourceVersion" = Option<String>, Query, description = "with watch: resume after this event's resourceVersion (or send Last-Event-ID) instead of listing first"),
        ("fieldSelector" = Option<String>, Query, description = "with watch: id=NAME watches one instance"),
        ("timeoutSeconds" = Option<u64>, Query, description = "with watch: end the stream after this long (default 1800)", minimum = 1, maximum = 3600),
    ),
    responses(
        (status = 200, description = "a page; with watch=true a stream of server-sent events whose data are InstanceWatchEvent",
            content((InstanceList = "application/json"), (InstanceWatchEvent = "text/event-stream"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn list_instances(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): Path<(String, String)>,
    headers: HeaderMap,
    ListQuery(paging, filters): ListQuery<InstanceFilters>,
) -> ApiResult<Response> {
    if filters.watch {
        let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
        let events = app
            .watch_instances(&caller, (&region, &project), &filters, last_event_id)
            .await?;
        let mut response = Sse::new(events).into_response();
        response
            .headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        return Ok(response);
    }
    Ok(Json(
        app.list_instances(&caller, (&region, &project), &paging, &filters)
            .await?,
    )
    .into_response())
}

/// Create an instance; it answers PROVISIONING and moves on to RUNNING.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/compute/instances",
    operation_id = "createInstance", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path)),
    request_body = InstanceCreateRequest,
    responses(
        (status = 201, body = Instance, headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "id taken, or no capacity (RESOURCE_EXHAUSTED)"),
    )
)]
pub async fn create_instance(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): Path<(String, String)>,
    StrictJson(body): StrictJson<InstanceCreateRequest>,
) -> ApiResult<Response> {
    let view = app
        .create_instance(&caller, (&region, &project), body)
        .await?;
    Ok(with_etag(StatusCode::CREATED, view.instance, &view.etag))
}

/// Get instance details. With `If-None-Match: <etag>` it answers 304 while the instance is
/// unchanged; adding `Prefer: wait=<seconds>` (at most 50) holds the request until the
/// instance changes, so a client follows every status change without polling.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/instances/{id}",
    operation_id = "getInstance", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("If-None-Match" = Option<String>, Header, description = "ETag the caller has"),
        ("Prefer" = Option<String>, Header, description = "`wait=<seconds>`: wait up to that long for a change")),
    responses(
        (status = 200, body = Instance, headers(("ETag" = String))),
        (status = 304, description = "the instance still has the ETag sent in If-None-Match"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn get_instance(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): Path<(String, String, String)>,
    wait: WaitForChange,
    axum::Extension(gone): axum::Extension<ClientGone>,
) -> ApiResult<Response> {
    let view = app
        .get_instance_when_changed(
            &caller,
            instance(&region, &project, &id),
            (wait.etag.as_deref(), wait.wait),
            &gone,
        )
        .await?;
    Ok(match view {
        Some(read) => with_etag(StatusCode::OK, read.body, &read.etag),
        None => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            if let Some(etag) = wait.etag.and_then(|e| e.parse().ok()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::ETAG, etag);
            }
            response
        }
    })
}

/// Update an instance: displayName, description, labels, instanceMetadata (each replaced
/// whole when present).
#[utoipa::path(
    patch, path = "/v1/regions/{region}/projects/{project}/compute/instances/{id}",
    operation_id = "updateInstance", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("If-Match" = Option<String>, Header, description = "ETag the change is based on")),
    request_body = InstanceUpdateRequest,
    responses(
        (status = 200, body = Instance, headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody, description = "If-Match names an older version"),
    )
)]
pub async fn update_instance(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): Path<(String, String, String)>,
    precondition: Precondition,
    StrictJson(body): StrictJson<InstanceUpdateRequest>,
) -> ApiResult<Response> {
    let view = app
        .update_instance(
            &caller,
            instance(&region, &project, &id),
            &precondition,
            body,
        )
        .await?;
    Ok(with_etag(StatusCode::OK, view.instance, &view.etag))
}

/// Delete an instance: 204 at once; it shows STOPPING ("deleting") until its host has
/// destroyed the VM and its disks, then 404.
#[utoipa::path(
    delete, path = "/v1/regions/{region}/projects/{project}/compute/instances/{id}",
    operation_id = "deleteInstance", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("If-Match" = Option<String>, Header, description = "ETag the deletion is based on")),
    responses(
        (status = 204, description = "deletion initiated"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody),
    )
)]
pub async fn delete_instance(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): Path<(String, String, String)>,
    precondition: Precondition,
) -> ApiResult<StatusCode> {
    app.delete_instance(&caller, instance(&region, &project, &id), &precondition)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Act on an instance: `…/instances/{id}:start`, `:stop`, `:reboot`, `:suspend`, `:resume`.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/compute/instances/{id}:{action}",
    operation_id = "instanceAction", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("action" = InstanceAction, Path, description = "start, stop, reboot, suspend or resume"),
        ("If-Match" = Option<String>, Header, description = "ETag the action is based on")),
    responses(
        (status = 200, body = Instance, headers(("ETag" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the action is impossible in the current state"),
        (status = 412, body = ErrorBody),
    )
)]
pub async fn instance_action(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id_action)): Path<(String, String, String)>,
    precondition: Precondition,
) -> ApiResult<Response> {
    let (id, verb) = id_action.split_once(':').ok_or_else(|| {
        Error::NotFound(
            "POST on an instance needs an action: …/instances/{id}:start, :stop, :reboot, :suspend or :resume"
                .into(),
        )
    })?;
    let action = Action::parse(verb)
        .filter(|a| *a != Action::Delete)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "unknown instance action {verb:?}; use start, stop, reboot, suspend or resume"
            ))
        })?;
    let view = app
        .act_on_instance(
            &caller,
            instance(&region, &project, id),
            &precondition,
            action,
        )
        .await?;
    Ok(with_etag(StatusCode::OK, view.instance, &view.etag))
}

/// Read the serial console log from byte offset `start`.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/instances/{id}/serialPortOutput",
    operation_id = "getSerialPortOutput", tag = "instances",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("start" = Option<u64>, Query, description = "byte offset to read from (default 0)")),
    responses(
        (status = 200, body = SerialPortOutput),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn serial_port_output(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): Path<(String, String, String)>,
    Filters(SerialStart(start)): Filters<SerialStart>,
) -> ApiResult<Json<SerialPortOutput>> {
    Ok(Json(
        app.serial_port_output(&caller, instance(&region, &project, &id), start)
            .await?,
    ))
}
