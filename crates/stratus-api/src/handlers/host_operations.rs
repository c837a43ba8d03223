//! `/v1/regions/{region}/zones/{zone}/hosts…`: the region's hosts, for its operators.

use crate::app::{App, Caller};
use crate::error::ApiResult;
use axum::Json;
use axum::extract::{Path, State};
use std::sync::Arc;
use stratus_core::Error;
use stratus_types::{ErrorBody, Host, HostAction, HostList, HostName, ResourceId};

type Ctx = State<Arc<App>>;

/// List the hosts of a zone with their capacity, allocation and heartbeat (operators).
#[utoipa::path(
    get, path = "/v1/regions/{region}/zones/{zone}/hosts", operation_id = "listHosts", tag = "hosts",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path)),
    responses(
        (status = 200, body = HostList), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn list_hosts(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone)): Path<(String, String)>,
) -> ApiResult<Json<HostList>> {
    Ok(Json(app.list_hosts(&caller, &region, &zone).await?))
}

/// Get a host, with the instances on it (operators).
#[utoipa::path(
    get, path = "/v1/regions/{region}/zones/{zone}/hosts/{host}", operation_id = "getHost", tag = "hosts",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path),
        ("host" = HostName, Path, description = "the host's name")),
    responses(
        (status = 200, body = Host), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn get_host(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone, host)): Path<(String, String, String)>,
) -> ApiResult<Json<Host>> {
    Ok(Json(app.get_host(&caller, &region, &zone, &host).await?))
}

/// Act on a host: `:cordon` (no new instances), `:uncordon`, `:drain` (cordon, and list what
/// is left on it) (operators).
#[utoipa::path(
    post, path = "/v1/regions/{region}/zones/{zone}/hosts/{host}:{action}", operation_id = "hostAction", tag = "hosts",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path),
        ("host" = HostName, Path, description = "the host's name"),
        ("action" = HostAction, Path, description = "cordon, uncordon or drain")),
    responses(
        (status = 200, body = Host), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn host_action(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone, host_action)): Path<(String, String, String)>,
) -> ApiResult<Json<Host>> {
    let (host, verb) = host_action.split_once(':').ok_or_else(|| {
        Error::NotFound(
            "POST on a host needs an action: …/hosts/{host}:cordon, :uncordon or :drain".into(),
        )
    })?;
    let action = HostAction::parse(verb).ok_or_else(|| {
        Error::NotFound(format!(
            "unknown host action {verb:?}; use cordon, uncordon or drain"
        ))
    })?;
    Ok(Json(
        app.act_on_host(&caller, &region, &zone, host, action)
            .await?,
    ))
}
