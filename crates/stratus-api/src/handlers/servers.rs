//! `/v1/regions/{region}/projects/{project}/infrastructure/servers…`: bare-metal servers, for
//! the region's operators.

use crate::app::{App, Caller};
use crate::error::ApiResult;
use crate::extract::{ListQuery, NoFilters, StrictJson};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use stratus_core::Error;
use stratus_types::{
    ErrorBody, ResourceId, Server, ServerAction, ServerBatchCreateRequest, ServerBatchResult,
    ServerCreateRequest, ServerJob, ServerList, ServerLogList, ServerProvisionRequest,
    ServerUpdateRequest, ServerValidation,
};
use utoipa::ToSchema;

type Ctx = State<Arc<App>>;
type InProject = Path<(String, String)>;
type InProjectById = Path<(String, String, String)>;

/// List the project's bare-metal servers (operators).
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers", operation_id = "listServers", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query),
        ("offset" = Option<u64>, Query)),
    responses((status = 200, body = ServerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_servers(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<ServerList>> {
    Ok(Json(
        app.list_servers(&caller, (&region, &project), &paging)
            .await?,
    ))
}

/// Register a server by its BMC's Redfish address and credentials (operators); Stratus
/// inspects it at once.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers", operation_id = "registerServer", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path)),
    request_body = ServerCreateRequest,
    responses((status = 201, body = Server), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the id or the BMC address is taken"))
)]
pub async fn register_server(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    StrictJson(body): StrictJson<ServerCreateRequest>,
) -> ApiResult<(StatusCode, Json<Server>)> {
    let server = app
        .register_server(&caller, (&region, &project), body)
        .await?;
    Ok((StatusCode::CREATED, Json(server)))
}

/// Register several servers; each succeeds or fails on its own (operators).
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers:batchCreate", operation_id = "batchCreateServers", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path)),
    request_body = ServerBatchCreateRequest,
    responses((status = 200, body = ServerBatchResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn batch_create_servers(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    StrictJson(body): StrictJson<ServerBatchCreateRequest>,
) -> ApiResult<Json<ServerBatchResult>> {
    Ok(Json(
        app.batch_register_servers(&caller, (&region, &project), body.servers)
            .await?,
    ))
}

/// Get a server (operators).
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers/{id}", operation_id = "getServer", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Server), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 405, body = ErrorBody, description = "the id holds a colon: that is an action path, which takes POST only"))
)]
pub async fn get_server(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<Json<Server>> {
    Ok(Json(
        app.get_server(&caller, (&region, &project, &id)).await?,
    ))
}

/// Change a server's displayName, description, tags or persona (operators).
#[utoipa::path(
    patch, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers/{id}", operation_id = "updateServer", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    request_body = ServerUpdateRequest,
    responses((status = 200, body = Server), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 405, body = ErrorBody, description = "the id holds a colon: that is an action path, which takes POST only"))
)]
pub async fn update_server(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
    StrictJson(body): StrictJson<ServerUpdateRequest>,
) -> ApiResult<Json<Server>> {
    Ok(Json(
        app.update_server(&caller, (&region, &project, &id), body)
            .await?,
    ))
}

/// Decommission a server (operators): refused while an instance is on it.
#[utoipa::path(
    delete, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers/{id}", operation_id = "decommissionServer", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "an instance is on the server"),
        (status = 405, body = ErrorBody, description = "the id holds a colon: that is an action path, which takes POST only"))
)]
pub async fn decommission_server(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<StatusCode> {
    app.decommission_server(&caller, (&region, &project, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An action on a server.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ServerActionName {
    /// registered or failed → ready (202 with a job)
    Provision,
    /// whether Stratus can deploy the server through its BMC
    Validate,
    PowerOn,
    PowerOff,
    Reboot,
    /// read the hardware and power state again
    Inspect,
}

/// What `…/servers/{id}:{action}` answers: the job of `:provision` (202), the verdict of
/// `:validate`, or the server after a power action or `:inspect`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ServerActionResponse {
    Server(Box<Server>),
    Validation(ServerValidation),
    Job(ServerJob),
}

/// Act on a server (operators): `:provision` (registered or failed → ready; 202 with a job),
/// `:validate`, `:powerOn`, `:powerOff`, `:reboot`, `:inspect`.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers/{id}:{action}", operation_id = "serverAction", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("action" = ServerActionName, Path)),
    request_body(content = Option<ServerProvisionRequest>, description = "`:provision` takes `{}` (its fields are accepted and unused)"),
    responses((status = 200, body = ServerActionResponse), (status = 202, body = ServerJob),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the server's state does not allow it"),
        (status = 503, body = ErrorBody, description = "the BMC did not answer"))
)]
pub async fn server_action(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id_action)): InProjectById,
    body: Bytes,
) -> ApiResult<Response> {
    let (id, verb) = id_action.split_once(':').ok_or_else(|| {
        Error::NotFound(
            "POST on a server needs an action: …/servers/{id}:provision, :validate, :powerOn, \
             :powerOff, :reboot or :inspect"
                .into(),
        )
    })?;
    let at = (region.as_str(), project.as_str(), id);
    if !body.is_empty() {
        let _: Option<ServerProvisionRequest> = serde_json::from_slice(&body).map_err(|e| {
            Error::invalid("body", format!("not a JSON object this action takes: {e}"))
        })?;
    }
    Ok(match verb {
        "provision" => (
            StatusCode::ACCEPTED,
            Json(app.provision_server(&caller, at).await?),
        )
            .into_response(),
        "validate" => Json(app.validate_server(&caller, at).await?).into_response(),
        other => {
            let action = ServerAction::parse(other).ok_or_else(|| {
                Error::invalid(
                    "action",
                    format!(
                        "unknown server action {other:?}; use provision, validate, powerOn, \
                         powerOff, reboot or inspect"
                    ),
                )
            })?;
            Json(app.server_action(&caller, at, action).await?).into_response()
        }
    })
}

/// Query of `…/servers/{id}/logs`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogQuery {
    start_time: Option<String>,
    end_time: Option<String>,
    page_size: Option<String>,
    page_token: Option<String>,
}

fn time_param(
    name: &str,
    text: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| Error::invalid(name, format!("{t:?} is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

/// What Stratus did with the server's BMC, oldest first (operators).
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/infrastructure/servers/{id}/logs", operation_id = "getServerLogs", tag = "servers",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("startTime" = Option<String>, Query, format = DateTime), ("endTime" = Option<String>, Query, format = DateTime),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000), ("pageToken" = Option<String>, Query)),
    responses((status = 200, body = ServerLogList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn server_logs(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ServerLogList>> {
    let Query(query) = query.map_err(|e| Error::invalid("query", e.body_text()))?;
    let start = time_param("startTime", query.start_time.as_deref())?;
    let end = time_param("endTime", query.end_time.as_deref())?;
    let page_size = query
        .page_size
        .map(|n| {
            n.parse::<u32>()
                .map_err(|_| Error::invalid("pageSize", format!("{n:?} is not a number")))
        })
        .transpose()?;
    Ok(Json(
        app.server_logs(
            &caller,
            (&region, &project, &id),
            (start, end),
            page_size,
            query.page_token.as_deref(),
        )
        .await?,
    ))
}
