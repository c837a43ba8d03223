//! `/v1/regions/global/organizations…` and `/v1/regions/global/projects…`

use super::with_etag;
use crate::app::App;
use crate::app::{Caller, OrganizationFilter, Precondition};
use crate::error::ApiResult;
use crate::extract::{ListQuery, NoFilters, StrictJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use stratus_types::{
    ErrorBody, Organization, OrganizationCreateRequest, OrganizationList,
    OrganizationUpdateRequest, Project, ProjectCreateRequest, ProjectList, ProjectUpdateRequest,
    Quotas, QuotasUpdateRequest, ResourceId,
};

type Ctx = State<Arc<App>>;

/// List organizations (operators see all, everyone else their own).
#[utoipa::path(
    get, path = "/v1/regions/global/organizations", operation_id = "listOrganizations", tag = "organizations",
    params(
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query),
    ),
    responses((status = 200, body = OrganizationList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_organizations(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<OrganizationList>> {
    Ok(Json(app.list_organizations(&caller, &paging).await?))
}

/// Create an organization (a tenant).
#[utoipa::path(
    post, path = "/v1/regions/global/organizations", operation_id = "createOrganization", tag = "organizations",
    request_body = OrganizationCreateRequest,
    responses(
        (status = 201, body = Organization), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn create_organization(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<OrganizationCreateRequest>,
) -> ApiResult<Response> {
    let org = app.create_organization(&caller, body).await?;
    Ok(with_etag(StatusCode::CREATED, org.value, &org.etag))
}

/// Get an organization.
#[utoipa::path(
    get, path = "/v1/regions/global/organizations/{id}", operation_id = "getOrganization", tag = "organizations",
    params(("id" = ResourceId, Path)),
    responses((status = 200, body = Organization), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_organization(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let org = app.get_organization(&caller, &id).await?;
    Ok(with_etag(StatusCode::OK, org.value, &org.etag))
}

/// Update an organization's displayName or description.
#[utoipa::path(
    patch, path = "/v1/regions/global/organizations/{id}", operation_id = "updateOrganization", tag = "organizations",
    params(("id" = ResourceId, Path), ("If-Match" = Option<String>, Header)),
    request_body = OrganizationUpdateRequest,
    responses(
        (status = 200, body = Organization), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
    )
)]
pub async fn update_organization(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    precondition: Precondition,
    StrictJson(body): StrictJson<OrganizationUpdateRequest>,
) -> ApiResult<Response> {
    let org = app
        .update_organization(&caller, &id, &precondition, body)
        .await?;
    Ok(with_etag(StatusCode::OK, org.value, &org.etag))
}

/// Delete an organization that has no projects left.
#[utoipa::path(
    delete, path = "/v1/regions/global/organizations/{id}", operation_id = "deleteOrganization", tag = "organizations",
    params(("id" = ResourceId, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "it still has projects"),
        (status = 412, body = ErrorBody),
    )
)]
pub async fn delete_organization(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    precondition: Precondition,
) -> ApiResult<StatusCode> {
    app.delete_organization(&caller, &id, &precondition).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An organization's quotas, each with what its instances use (owners, admins and the region's
/// operators).
#[utoipa::path(
    get, path = "/v1/regions/global/organizations/{id}/quotas", operation_id = "getQuotas", tag = "organizations",
    params(("id" = ResourceId, Path)),
    responses(
        (status = 200, body = Quotas), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn get_quotas(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let quotas = app.get_quotas(&caller, &id).await?;
    Ok(with_etag(StatusCode::OK, quotas.value, &quotas.etag))
}

/// Set an organization's quotas (the region's operators): a number is a limit, `null` unlimited.
#[utoipa::path(
    patch, path = "/v1/regions/global/organizations/{id}/quotas", operation_id = "updateQuotas", tag = "organizations",
    params(("id" = ResourceId, Path), ("If-Match" = Option<String>, Header)),
    request_body = QuotasUpdateRequest,
    responses(
        (status = 200, body = Quotas), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
    )
)]
pub async fn update_quotas(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    precondition: Precondition,
    StrictJson(body): StrictJson<QuotasUpdateRequest>,
) -> ApiResult<Response> {
    let quotas = app.update_quotas(&caller, &id, &precondition, body).await?;
    Ok(with_etag(StatusCode::OK, quotas.value, &quotas.etag))
}

/// List projects, optionally of one organization.
#[utoipa::path(
    get, path = "/v1/regions/global/projects", operation_id = "listProjects", tag = "projects",
    params(
        ("organizationId" = Option<ResourceId>, Query),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query),
    ),
    responses((status = 200, body = ProjectList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_projects(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, filter): ListQuery<OrganizationFilter>,
) -> ApiResult<Json<ProjectList>> {
    Ok(Json(app.list_projects(&caller, &paging, &filter).await?))
}

/// Create a project in an organization.
#[utoipa::path(
    post, path = "/v1/regions/global/projects", operation_id = "createProject", tag = "projects",
    request_body = ProjectCreateRequest,
    responses(
        (status = 201, body = Project), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn create_project(
    State(app): Ctx,
    caller: Caller,
    StrictJson(body): StrictJson<ProjectCreateRequest>,
) -> ApiResult<Response> {
    let project = app.create_project(&caller, body).await?;
    Ok(with_etag(StatusCode::CREATED, project.value, &project.etag))
}

/// Get a project.
#[utoipa::path(
    get, path = "/v1/regions/global/projects/{id}", operation_id = "getProject", tag = "projects",
    params(("id" = ResourceId, Path)),
    responses((status = 200, body = Project), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_project(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = app.get_project(&caller, &id).await?;
    Ok(with_etag(StatusCode::OK, project.value, &project.etag))
}

/// Update a project's displayName or description.
#[utoipa::path(
    patch, path = "/v1/regions/global/projects/{id}", operation_id = "updateProject", tag = "projects",
    params(("id" = ResourceId, Path), ("If-Match" = Option<String>, Header)),
    request_body = ProjectUpdateRequest,
    responses(
        (status = 200, body = Project), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
    )
)]
pub async fn update_project(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    precondition: Precondition,
    StrictJson(body): StrictJson<ProjectUpdateRequest>,
) -> ApiResult<Response> {
    let project = app
        .update_project(&caller, &id, &precondition, body)
        .await?;
    Ok(with_etag(StatusCode::OK, project.value, &project.etag))
}

/// Delete a project that has no instances left.
#[utoipa::path(
    delete, path = "/v1/regions/global/projects/{id}", operation_id = "deleteProject", tag = "projects",
    params(("id" = ResourceId, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "it still has instances"),
        (status = 412, body = ErrorBody),
    )
)]
pub async fn delete_project(
    State(app): Ctx,
    caller: Caller,
    Path(id): Path<String>,
    precondition: Precondition,
) -> ApiResult<StatusCode> {
    app.delete_project(&caller, &id, &precondition).await?;
    Ok(StatusCode::NO_CONTENT)
}
