//! `/v1/regions/global/iam/apikeys…` and the token introspection and revocation endpoints.

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::StrictJson;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use std::sync::Arc;
use stratus_core::Error;
use stratus_types::ErrorBody;
use stratus_types::auth::{
    ApiKey, ApiKeyCreateRequest, ApiKeyList, ApiKeyRotateRequest, ApiKeyUpdateRequest,
    IntrospectResponse, RevokeResponse, TokenBody,
};

type Ctx = State<Arc<App>>;

/// List the caller's API keys (operators: every key).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/apikeys", operation_id = "listApiKeys", tag = "iam",
    params(
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("status" = Option<String>, Query),
    ),
    responses((status = 200, body = ApiKeyList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_api_keys(
    State(app): Ctx,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ApiKeyList>> {
    Ok(Json(app.list_api_keys(&principal, query.as_deref()).await?))
}

/// Create an API key; the answer carries its secret, shown this once.
#[utoipa::path(
    post, path = "/v1/regions/global/iam/apikeys", operation_id = "createApiKey", tag = "iam",
    request_body = ApiKeyCreateRequest,
    responses(
        (status = 201, body = ApiKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn create_api_key(
    State(app): Ctx,
    principal: Principal,
    StrictJson(body): StrictJson<ApiKeyCreateRequest>,
) -> ApiResult<(StatusCode, Json<ApiKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_api_key(&principal, body).await?),
    ))
}

/// Get one of the caller's API keys (another principal's key answers 404).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "getApiKey", tag = "iam",
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_api_key(
    State(app): Ctx,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(app.get_api_key(&principal, &id).await?))
}

/// Rename, re-role, disable or re-enable an API key.
#[utoipa::path(
    patch, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "updateApiKey", tag = "iam",
    params(("id" = String, Path)),
    request_body = ApiKeyUpdateRequest,
    responses(
        (status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn update_api_key(
    State(app): Ctx,
    principal: Principal,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ApiKeyUpdateRequest>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(app.update_api_key(&principal, &id, body).await?))
}

/// Delete an API key; tokens minted from it run out within their lifetime.
#[utoipa::path(
    delete, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "deleteApiKey", tag = "iam",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_api_key(
    State(app): Ctx,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.delete_api_key(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an API key's secret (`…/apikeys/{id}:rotate`); the previous secret keeps working for
/// `gracePeriodSeconds` (0..300).
#[utoipa::path(
    post, path = "/v1/regions/global/iam/apikeys/{id}:rotate", operation_id = "rotateApiKey", tag = "iam",
    params(("id" = String, Path)),
    request_body(content = Option<ApiKeyRotateRequest>),
    responses(
        (status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn rotate_api_key(
    State(app): Ctx,
    principal: Principal,
    Path(id_action): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ApiKey>> {
    let (id, action) = id_action.split_once(':').ok_or_else(|| {
        Error::NotFound("POST on an API key needs an action: …/apikeys/{id}:rotate".into())
    })?;
    if action != "rotate" {
        return Err(Error::NotFound(format!(
            "unknown API key action {action:?}; the only one is rotate"
        ))
        .into());
    }
    let body: ApiKeyRotateRequest = crate::extract::parse_body(&body)?;
    Ok(Json(app.rotate_api_key(&principal, id, body).await?))
}

/// Whether a token is active, and its claims (RFC 7662-like; JSON body `{token}`).
#[utoipa::path(
    post, path = "/v1/regions/global/auth/introspect", operation_id = "introspectToken", tag = "auth",
    request_body = TokenBody,
    responses((status = 200, body = IntrospectResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn introspect(
    State(app): Ctx,
    principal: Principal,
    StrictJson(body): StrictJson<TokenBody>,
) -> ApiResult<Json<IntrospectResponse>> {
    Ok(Json(app.introspect(&principal, &body.token).await?))
}

/// Revoke a token: it stops working at once (RFC 7009-like; always `{"revoked": true}`).
#[utoipa::path(
    post, path = "/v1/regions/global/auth/revoke", operation_id = "revokeToken", tag = "auth",
    request_body = TokenBody,
    responses((status = 200, body = RevokeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn revoke(
    State(app): Ctx,
    principal: Principal,
    StrictJson(body): StrictJson<TokenBody>,
) -> ApiResult<Json<RevokeResponse>> {
    Ok(Json(app.revoke(&principal, &body.token).await?))
}
