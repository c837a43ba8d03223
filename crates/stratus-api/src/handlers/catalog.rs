//! Catalog reads: `/v1/regions…`, zones, instance types, GPU types, images.

use super::with_etag;
use crate::app::App;
use crate::app::Caller;
use crate::error::ApiResult;
use crate::extract::{ListQuery, NoFilters, StrictJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use stratus_types::{
    ErrorBody, GpuType, GpuTypeList, Image, ImageCreateRequest, ImageList, InstanceType,
    InstanceTypeList, Region, RegionList, ResourceId, Zone, ZoneList,
};

type Ctx = State<Arc<App>>;

/// List the regions this endpoint serves.
#[utoipa::path(get, path = "/v1/regions", operation_id = "listRegions", tag = "catalog",
    params(("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = RegionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_regions(
    State(app): Ctx,
    caller: Caller,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<RegionList>> {
    Ok(Json(app.list_regions(&caller, &paging)?))
}

/// Get a region.
#[utoipa::path(get, path = "/v1/regions/{region}", operation_id = "getRegion", tag = "catalog",
    params(("region" = ResourceId, Path)),
    responses((status = 200, body = Region), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_region(
    State(app): Ctx,
    caller: Caller,
    Path(region): Path<String>,
) -> ApiResult<Json<Region>> {
    Ok(Json(app.get_region(&caller, &region)?))
}

/// List the zones of a region.
#[utoipa::path(get, path = "/v1/regions/{region}/zones", operation_id = "listZones", tag = "catalog",
    params(("region" = ResourceId, Path), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = ZoneList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_zones(
    State(app): Ctx,
    caller: Caller,
    Path(region): Path<String>,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<ZoneList>> {
    Ok(Json(app.list_zones(&caller, &region, &paging)?))
}

/// Get a zone.
#[utoipa::path(get, path = "/v1/regions/{region}/zones/{zone}", operation_id = "getZone", tag = "catalog",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path)),
    responses((status = 200, body = Zone), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_zone(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone)): Path<(String, String)>,
) -> ApiResult<Json<Zone>> {
    Ok(Json(app.get_zone(&caller, &region, &zone)?))
}

/// List the instance types of a zone.
#[utoipa::path(get, path = "/v1/regions/{region}/zones/{zone}/instance-types", operation_id = "listInstanceTypes", tag = "catalog",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = InstanceTypeList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_instance_types(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone)): Path<(String, String)>,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<InstanceTypeList>> {
    Ok(Json(
        app.list_instance_types(&caller, &region, &zone, &paging)?,
    ))
}

/// Get an instance type.
#[utoipa::path(get, path = "/v1/regions/{region}/zones/{zone}/instance-types/{id}", operation_id = "getInstanceType", tag = "catalog",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = InstanceType), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_instance_type(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone, id)): Path<(String, String, String)>,
) -> ApiResult<Json<InstanceType>> {
    Ok(Json(app.get_instance_type(&caller, &region, &zone, &id)?))
}

/// List the GPU types of a zone.
#[utoipa::path(get, path = "/v1/regions/{region}/zones/{zone}/gpu-types", operation_id = "listGpuTypes", tag = "catalog",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = GpuTypeList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_gpu_types(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone)): Path<(String, String)>,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<GpuTypeList>> {
    Ok(Json(app.list_gpu_types(&caller, &region, &zone, &paging)?))
}

/// Get a GPU type.
#[utoipa::path(get, path = "/v1/regions/{region}/zones/{zone}/gpu-types/{id}", operation_id = "getGpuType", tag = "catalog",
    params(("region" = ResourceId, Path), ("zone" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = GpuType), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_gpu_type(
    State(app): Ctx,
    caller: Caller,
    Path((region, zone, id)): Path<(String, String, String)>,
) -> ApiResult<Json<GpuType>> {
    Ok(Json(app.get_gpu_type(&caller, &region, &zone, &id)?))
}

/// List the images of a region.
#[utoipa::path(get, path = "/v1/regions/{region}/compute/images", operation_id = "listImages", tag = "images",
    params(("region" = ResourceId, Path), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 500), ("pageToken" = Option<String>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = ImageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_images(
    State(app): Ctx,
    caller: Caller,
    Path(region): Path<String>,
    ListQuery(paging, NoFilters): ListQuery<NoFilters>,
) -> ApiResult<Json<ImageList>> {
    Ok(Json(app.list_images(&caller, &region, &paging).await?))
}

/// Register an image: it is imported from a path on the control plane's host or an http(s)
/// URL, its checksum verified; `status` and `statusMessage` show the progress.
#[utoipa::path(post, path = "/v1/regions/{region}/compute/images", operation_id = "createImage", tag = "images",
    params(("region" = ResourceId, Path)),
    request_body = ImageCreateRequest,
    responses((status = 201, body = Image), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_image(
    State(app): Ctx,
    caller: Caller,
    Path(region): Path<String>,
    StrictJson(body): StrictJson<ImageCreateRequest>,
) -> ApiResult<Response> {
    let (image, etag) = app.create_image(&caller, &region, body).await?;
    Ok(with_etag(StatusCode::CREATED, image, &etag))
}

/// Get an image.
#[utoipa::path(get, path = "/v1/regions/{region}/compute/images/{id}", operation_id = "getImage", tag = "images",
    params(("region" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 200, body = Image), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_image(
    State(app): Ctx,
    caller: Caller,
    Path((region, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (image, etag) = app.get_image(&caller, &region, &id).await?;
    Ok(with_etag(StatusCode::OK, image, &etag))
}

/// Delete an image no instance uses.
#[utoipa::path(delete, path = "/v1/regions/{region}/compute/images/{id}", operation_id = "deleteImage", tag = "images",
    params(("region" = ResourceId, Path), ("id" = ResourceId, Path)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "a malformed id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "instances use it")))]
pub async fn delete_image(
    State(app): Ctx,
    caller: Caller,
    Path((region, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.delete_image(&caller, &region, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
