//! `/v1/regions/global/iam/…` (API keys, service accounts and their credentials), token
//! introspection and revocation, and the audit trail.

use crate::app::{ApiKeyFilters, App, AuditFilter, Caller, StatusFilter};
use crate::error::ApiResult;
use crate::extract::{Filters, ListQuery, OptionalJson, StrictJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use stratus_core::Error;
use stratus_types::auth::{
    ActivationStatus, ApiKey, ApiKeyCreateRequest, ApiKeyList, ApiKeyRotateRequest,
    ApiKeyUpdateRequest, AuditEventList, CheckRequest, CheckResponse, Credential,
    CredentialCreateRequest, CredentialList, CredentialStatus, IntrospectResponse, RevokeResponse,
    ServiceAccount, ServiceAccountCreateRequest, ServiceAccountList, ServiceAccountUpdateRequest,
    TokenBody,
};
use stratus_types::{ErrorBody, ResourceId};

type Ctx = State<Arc<App>>;

/// List the caller's API keys (operators: every key).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/apikeys", operation_id = "listApiKeys", tag = "iam",
    params(
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("status" = Option<ActivationStatus>, Query),
    ),
    responses((status = 200, body = ApiKeyList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_api_keys(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, filters): ListQuery<ApiKeyFilters>,
) -> ApiResult<Json<ApiKeyList>> {
    Ok(Json(app.list_api_keys(&caller, &paging, &filters).await?))
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
    caller: Caller,
    StrictJson(body): StrictJson<ApiKeyCreateRequest>,
) -> ApiResult<(StatusCode, Json<ApiKey>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_api_key(&caller, body).await?),
    ))
}

/// Get one of the caller's API keys (another principal's key answers 404).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "getApiKey", tag = "iam",
    params(("id" = ResourceId, Path)),
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_api_key(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(app.get_api_key(&caller, &id).await?))
}

/// Rename, re-role, disable or re-enable an API key.
#[utoipa::path(
    patch, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "updateApiKey", tag = "iam",
    params(("id" = ResourceId, Path)),
    request_body = ApiKeyUpdateRequest,
    responses(
        (status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn update_api_key(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ApiKeyUpdateRequest>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(app.update_api_key(&caller, &id, body).await?))
}

/// Delete an API key; tokens minted from it run out within their lifetime.
#[utoipa::path(
    delete, path = "/v1/regions/global/iam/apikeys/{id}", operation_id = "deleteApiKey", tag = "iam",
    params(("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_api_key(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.delete_api_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an API key's secret (`…/apikeys/{id}:rotate`); the previous secret keeps working for
/// `gracePeriodSeconds` (0..300).
#[utoipa::path(
    post, path = "/v1/regions/global/iam/apikeys/{id}:rotate", operation_id = "rotateApiKey", tag = "iam",
    params(("id" = ResourceId, Path)),
    request_body(content = Option<ApiKeyRotateRequest>),
    responses(
        (status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn rotate_api_key(
    State(app): Ctx,
    caller: Caller,
    Path(id_action): Path<String>,
    OptionalJson(body): OptionalJson<ApiKeyRotateRequest>,
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
    Ok(Json(app.rotate_api_key(&caller, id, body).await?))
}

/// Whether a token is active, and its claims (RFC 7662-like; JSON body `{token}`).
#[utoipa::path(
    post, path = "/v1/regions/global/auth/introspect", operation_id = "introspectToken", tag = "auth",
    request_body = TokenBody,
    responses((status = 200, body = IntrospectResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn introspect(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<TokenBody>,
) -> ApiResult<Json<IntrospectResponse>> {
    Ok(Json(app.introspect(&caller, &body.token).await?))
}

/// Ask whether a principal (the caller, or an API key or service account of an organization
/// the caller administers) may do each of 1..100 actions on a project or organization.
#[utoipa::path(
    post, path = "/v1/regions/global/auth/check", operation_id = "checkPermissions", tag = "auth",
    request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn check_permissions(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<CheckRequest>,
) -> ApiResult<Json<CheckResponse>> {
    Ok(Json(app.check_permissions(&caller, body).await?))
}

/// Revoke a token: it stops working at once (RFC 7009-like; always `{"revoked": true}`).
#[utoipa::path(
    post, path = "/v1/regions/global/auth/revoke", operation_id = "revokeToken", tag = "auth",
    request_body = TokenBody,
    responses((status = 200, body = RevokeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn revoke(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<TokenBody>,
) -> ApiResult<Json<RevokeResponse>> {
    Ok(Json(app.revoke(&caller, &body.token).await?))
}

/// List the organization's service accounts (owners and admins).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/service-accounts", operation_id = "listServiceAccounts", tag = "iam",
    params(
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("status" = Option<ActivationStatus>, Query),
    ),
    responses((status = 200, body = ServiceAccountList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_service_accounts(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, filter): ListQuery<StatusFilter>,
) -> ApiResult<Json<ServiceAccountList>> {
    Ok(Json(
        app.list_service_accounts(&caller, &paging, &filter).await?,
    ))
}

/// Make a service account (owners and admins); its roles never exceed the maker's.
#[utoipa::path(
    post, path = "/v1/regions/global/iam/service-accounts", operation_id = "createServiceAccount", tag = "iam",
    request_body = ServiceAccountCreateRequest,
    responses((status = 201, body = ServiceAccount), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn create_service_account(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<ServiceAccountCreateRequest>,
) -> ApiResult<(StatusCode, Json<ServiceAccount>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_service_account(&caller, body).await?),
    ))
}

/// Get a service account (to anyone but its organization's administrators: 404).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/service-accounts/{id}", operation_id = "getServiceAccount", tag = "iam",
    params(("id" = ResourceId, Path)),
    responses((status = 200, body = ServiceAccount), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_service_account(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ServiceAccount>> {
    Ok(Json(app.get_service_account(&caller, &id).await?))
}

/// Rename, describe, re-role, disable or re-enable a service account.
#[utoipa::path(
    patch, path = "/v1/regions/global/iam/service-accounts/{id}", operation_id = "updateServiceAccount", tag = "iam",
    params(("id" = ResourceId, Path)),
    request_body = ServiceAccountUpdateRequest,
    responses((status = 200, body = ServiceAccount), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn update_service_account(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ServiceAccountUpdateRequest>,
) -> ApiResult<Json<ServiceAccount>> {
    Ok(Json(app.update_service_account(&caller, &id, body).await?))
}

/// Delete a service account and its credentials.
#[utoipa::path(
    delete, path = "/v1/regions/global/iam/service-accounts/{id}", operation_id = "deleteServiceAccount", tag = "iam",
    params(("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_service_account(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.delete_service_account(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a service account's credentials (`status`: active or expired).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/service-accounts/{serviceAccountId}/credentials",
    operation_id = "listCredentials", tag = "iam",
    params(("serviceAccountId" = ResourceId, Path), ("status" = Option<CredentialStatus>, Query)),
    responses((status = 200, body = CredentialList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_credentials(
    State(app): Ctx,
    caller: Caller,
    Path(account): Path<String>,
    Filters(filter): Filters<StatusFilter>,
) -> ApiResult<Json<CredentialList>> {
    Ok(Json(
        app.list_credentials(&caller, &account, &filter).await?,
    ))
}

/// Make a client secret (shown once; at most 5 active per account).
#[utoipa::path(
    post, path = "/v1/regions/global/iam/service-accounts/{serviceAccountId}/credentials",
    operation_id = "createCredential", tag = "iam",
    params(("serviceAccountId" = ResourceId, Path)),
    request_body(content = Option<CredentialCreateRequest>),
    responses((status = 201, body = Credential), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the account has 5 active credentials"))
)]
pub async fn create_credential(
    State(app): Ctx,
    caller: Caller,
    Path(account): Path<String>,
    OptionalJson(body): OptionalJson<CredentialCreateRequest>,
) -> ApiResult<(StatusCode, Json<Credential>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_credential(&caller, &account, body).await?),
    ))
}

/// Get a credential (without its secret).
#[utoipa::path(
    get, path = "/v1/regions/global/iam/service-accounts/{serviceAccountId}/credentials/{id}",
    operation_id = "getCredential", tag = "iam",
    params(("serviceAccountId" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Credential), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_credential(
    State(app): Ctx,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Json<Credential>> {
    Ok(Json(app.get_credential(&caller, &account, &id).await?))
}

/// Delete a credential: it mints no more tokens.
#[utoipa::path(
    delete, path = "/v1/regions/global/iam/service-accounts/{serviceAccountId}/credentials/{id}",
    operation_id = "deleteCredential", tag = "iam",
    params(("serviceAccountId" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_credential(
    State(app): Ctx,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.delete_credential(&caller, &account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail of an organization, oldest first (its owners and admins; operators may
/// name any organization or leave it out for all).
#[utoipa::path(
    get, path = "/v1/regions/global/audit/events", operation_id = "listAuditEvents", tag = "iam",
    params(
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("organizationId" = Option<ResourceId>, Query),
    ),
    responses((status = 200, body = AuditEventList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_audit_events(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, filter): ListQuery<AuditFilter>,
) -> ApiResult<Json<AuditEventList>> {
    Ok(Json(
        app.list_audit_events(&caller, &paging, &filter).await?,
    ))
}
