//! Unauthenticated endpoints: health, token exchange, keys, the OpenAPI document.

use crate::app::App;
use crate::error::ApiResult;
use crate::extract::StrictJson;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use stratus_types::ErrorBody;
use stratus_types::auth::{TokenRequest, TokenResponse};

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "meta", security(),
    responses((status = 200, description = "serving"), (status = 503, body = ErrorBody)))]
pub async fn health(State(app): State<Arc<App>>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(app.health().await?))
}

/// Exchange a credential for an access token.
#[utoipa::path(post, path = "/v1/regions/global/auth/token", operation_id = "mintToken", tag = "auth", security(),
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn mint_token(
    State(app): State<Arc<App>>,
    StrictJson(body): StrictJson<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(app.mint_token(body).await?))
}

/// The public keys that verify this region's access tokens (a JWK set).
#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "getJwks", tag = "auth", security(),
    responses((status = 200, description = "JWK set")))]
pub async fn jwks(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.jwks())
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "meta", security(),
    responses((status = 200, description = "OpenAPI document")))]
pub async fn openapi(Extension(document): Extension<ApiDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_ref().clone(),
    )
        .into_response()
}

/// The OpenAPI document of the router serving it, as JSON text.
#[derive(Clone)]
pub struct ApiDocument(pub Arc<String>);
