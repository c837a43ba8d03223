//! `/v1/regions/{region}/projects/{project}/compute/networks|subnets|addresses…`

use super::with_etag;
use crate::app::{App, Caller, Precondition};
use crate::error::ApiResult;
use crate::extract::{ListQuery, NoFilters, StrictJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use stratus_types::{
    Address, AddressAllocateRequest, AddressList, ErrorBody, Network, NetworkCreateRequest,
    NetworkList, NetworkUpdateRequest, ResourceId, Subnet, SubnetList,
};

type Ctx = State<Arc<App>>;
type InProject = Path<(String, String)>;
type InProjectById = Path<(String, String, String)>;

/// List a project's networks, each with its subnets.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/networks", operation_id = "listNetworks", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query),
        ("offset" = Option<u64>, Query)),
    responses((status = 200, body = NetworkList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_networks(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<NetworkList>> {
    Ok(Json(
        app.list_networks(&caller, (&region, &project), &paging)
            .await?,
    ))
}

/// Create a network with a private CIDR; its subnet is made with it.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/compute/networks", operation_id = "createNetwork", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path)),
    request_body = NetworkCreateRequest,
    responses((status = 201, body = Network), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn create_network(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    StrictJson(body): StrictJson<NetworkCreateRequest>,
) -> ApiResult<Response> {
    let network = app
        .create_network(&caller, (&region, &project), body)
        .await?;
    Ok(with_etag(StatusCode::CREATED, network.value, &network.etag))
}

/// Get a network.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/networks/{id}", operation_id = "getNetwork", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Network), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_network(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<Response> {
    let network = app.get_network(&caller, (&region, &project, &id)).await?;
    Ok(with_etag(StatusCode::OK, network.value, &network.etag))
}

/// Change a network's displayName or description (its CIDR cannot change).
#[utoipa::path(
    patch, path = "/v1/regions/{region}/projects/{project}/compute/networks/{id}", operation_id = "updateNetwork", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("If-Match" = Option<String>, Header)),
    request_body = NetworkUpdateRequest,
    responses((status = 200, body = Network), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody))
)]
pub async fn update_network(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
    precondition: Precondition,
    StrictJson(body): StrictJson<NetworkUpdateRequest>,
) -> ApiResult<Response> {
    let network = app
        .update_network(&caller, (&region, &project, &id), &precondition, body)
        .await?;
    Ok(with_etag(StatusCode::OK, network.value, &network.etag))
}

/// Delete a network no instance or address uses any more (409 naming those that do).
#[utoipa::path(
    delete, path = "/v1/regions/{region}/projects/{project}/compute/networks/{id}", operation_id = "deleteNetwork", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path),
        ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "instances or addresses still use it"),
        (status = 412, body = ErrorBody))
)]
pub async fn delete_network(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
    precondition: Precondition,
) -> ApiResult<StatusCode> {
    app.delete_network(&caller, (&region, &project, &id), &precondition)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a project's subnets (made by the system, one per network).
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/subnets", operation_id = "listSubnets", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query),
        ("offset" = Option<u64>, Query)),
    responses((status = 200, body = SubnetList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_subnets(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<SubnetList>> {
    Ok(Json(
        app.list_subnets(&caller, (&region, &project), &paging)
            .await?,
    ))
}

/// Get a subnet.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/subnets/{id}", operation_id = "getSubnet", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Subnet), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_subnet(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<Json<Subnet>> {
    Ok(Json(
        app.get_subnet(&caller, (&region, &project, &id)).await?,
    ))
}

/// List the addresses a project reserved.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/addresses", operation_id = "listAddresses", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query),
        ("offset" = Option<u64>, Query)),
    responses((status = 200, body = AddressList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_addresses(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<AddressList>> {
    Ok(Json(
        app.list_addresses(&caller, (&region, &project), &paging)
            .await?,
    ))
}

/// Reserve an address: INTERNAL in a network (a given one, or the next free), or EXTERNAL.
#[utoipa::path(
    post, path = "/v1/regions/{region}/projects/{project}/compute/addresses", operation_id = "allocateAddress", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path)),
    request_body = AddressAllocateRequest,
    responses((status = 201, body = Address), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the address is taken, or none is free"))
)]
pub async fn allocate_address(
    State(app): Ctx,
    caller: Caller,
    Path((region, project)): InProject,
    StrictJson(body): StrictJson<AddressAllocateRequest>,
) -> ApiResult<(StatusCode, Json<Address>)> {
    let address = app
        .allocate_address(&caller, (&region, &project), body)
        .await?;
    Ok((StatusCode::CREATED, Json(address)))
}

/// Get an address.
#[utoipa::path(
    get, path = "/v1/regions/{region}/projects/{project}/compute/addresses/{id}", operation_id = "getAddress", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Address), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_address(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<Json<Address>> {
    Ok(Json(
        app.get_address(&caller, (&region, &project, &id)).await?,
    ))
}

/// Release an address no NIC holds (409 naming the instance that does).
#[utoipa::path(
    delete, path = "/v1/regions/{region}/projects/{project}/compute/addresses/{id}", operation_id = "releaseAddress", tag = "networks",
    params(("region" = ResourceId, Path), ("project" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "an instance's NIC holds it"))
)]
pub async fn release_address(
    State(app): Ctx,
    caller: Caller,
    Path((region, project, id)): InProjectById,
) -> ApiResult<StatusCode> {
    app.release_address(&caller, (&region, &project, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
