//! The Stratus HTTP API: the router, its middleware, authentication, and the mapping of
//! errors to the contract's error body.
//!
//! A request passes request-id → trace → panic guard → timeout → body limit, then the bearer
//! token check, then typed extraction (which validates), then exactly one application
//! function ([`app::App`]). Every error response, including those produced by the framework
//! itself (405, 413, timeouts, panics), is rewritten into the contract's
//! `{"error":{"code","message","details"}}` body.

pub mod app;
pub mod audit;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod oidc;
pub mod openapi;
pub mod paging;
pub mod server;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use handlers::{catalog, hosts, iam, instances, meta, tenancy};
use std::sync::Arc;
use std::time::Duration;
use stratus_core::Error;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest time a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router of the whole API over `app`.
pub fn router(app: Arc<App>) -> Router {
    let instance = "/v1/regions/{region}/projects/{project}/compute/instances";
    let routes = Router::new()
        .route("/healthz", get(meta::health))
        .route("/openapi.json", get(meta::openapi))
        .route("/.well-known/jwks.json", get(meta::jwks))
        .route("/v1/regions/global/auth/token", post(meta::mint_token))
        .route("/v1/regions/global/auth/introspect", post(iam::introspect))
        .route("/v1/regions/global/auth/revoke", post(iam::revoke))
        .route(
            "/v1/regions/global/auth/check",
            post(iam::check_permissions),
        )
        .route(
            "/v1/regions/global/iam/apikeys",
            get(iam::list_api_keys).post(iam::create_api_key),
        )
        .route(
            "/v1/regions/global/iam/apikeys/{id}",
            get(iam::get_api_key)
                .patch(iam::update_api_key)
                .delete(iam::delete_api_key)
                // `…/apikeys/{id}:rotate`: the action arrives inside the id segment.
                .post(iam::rotate_api_key),
        )
        .route(
            "/v1/regions/global/iam/service-accounts",
            get(iam::list_service_accounts).post(iam::create_service_account),
        )
        .route(
            "/v1/regions/global/iam/service-accounts/{id}",
            get(iam::get_service_account)
                .patch(iam::update_service_account)
                .delete(iam::delete_service_account),
        )
        .route(
            "/v1/regions/global/iam/service-accounts/{id}/credentials",
            get(iam::list_credentials).post(iam::create_credential),
        )
        .route(
            "/v1/regions/global/iam/service-accounts/{id}/credentials/{credential}",
            get(iam::get_credential).delete(iam::delete_credential),
        )
        .route(
            "/v1/regions/global/audit/events",
            get(iam::list_audit_events),
        )
        .route(
            "/v1/regions/global/organizations",
            get(tenancy::list_organizations).post(tenancy::create_organization),
        )
        .route(
            "/v1/regions/global/organizations/{id}",
            get(tenancy::get_organization)
                .patch(tenancy::update_organization)
                .delete(tenancy::delete_organization),
        )
        .route(
            "/v1/regions/global/projects",
            get(tenancy::list_projects).post(tenancy::create_project),
        )
        .route(
            "/v1/regions/global/projects/{id}",
            get(tenancy::get_project)
                .patch(tenancy::update_project)
                .delete(tenancy::delete_project),
        )
        .route("/v1/regions", get(catalog::list_regions))
        .route("/v1/regions/{region}", get(catalog::get_region))
        .route("/v1/regions/{region}/zones", get(catalog::list_zones))
        .route("/v1/regions/{region}/zones/{zone}", get(catalog::get_zone))
        .route(
            "/v1/regions/{region}/zones/{zone}/instance-types",
            get(catalog::list_instance_types),
        )
        .route(
            "/v1/regions/{region}/zones/{zone}/instance-types/{id}",
            get(catalog::get_instance_type),
        )
        .route(
            "/v1/regions/{region}/zones/{zone}/gpu-types",
            get(catalog::list_gpu_types),
        )
        .route(
            "/v1/regions/{region}/zones/{zone}/gpu-types/{id}",
            get(catalog::get_gpu_type),
        )
        .route(
            "/v1/regions/{region}/compute/images",
            get(catalog::list_images).post(catalog::create_image),
        )
        .route(
            "/v1/regions/{region}/compute/images/{id}",
            get(catalog::get_image).delete(catalog::delete_image),
        )
        .route("/internal/v1/images/{id}", get(hosts::image))
        .route(
            "/internal/v1/images/{id}/content",
            get(hosts::image_content),
        )
        .route(
            instance,
            get(instances::list_instances).post(instances::create_instance),
        )
        .route(
            &format!("{instance}/{{id}}"),
            get(instances::get_instance)
                .patch(instances::update_instance)
                .delete(instances::delete_instance)
                // `…/instances/{id}:{action}`: the action arrives inside the id segment.
                .post(instances::instance_action),
        )
        .route(
            &format!("{instance}/{{id}}/serialPortOutput"),
            get(instances::serial_port_output),
        )
        .route("/internal/v1/hosts", post(hosts::register))
        .route(
            "/internal/v1/hosts/{host}/assignments",
            get(hosts::assignments),
        )
        .route("/internal/v1/hosts/{host}/reports", post(hosts::report))
        .route(
            "/internal/v1/hosts/{host}/destroyed/{uid}",
            post(hosts::destroyed),
        )
        .route(
            "/internal/v1/hosts/{host}/serial/{uid}",
            post(hosts::serial),
        )
        .merge(console::routes())
        .fallback(not_found)
        .with_state(app.clone());
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(
                TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                        principal = tracing::field::Empty,
                    )
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                audit::audit,
            ))
            .layer(axum::middleware::map_response(errors_as_json))
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                REQUEST_TIMEOUT,
            ))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
    )
}

pub use app::App;

async fn not_found() -> Response {
    error::ApiError(Error::NotFound(
        "no such path in this API (see /openapi.json)".into(),
    ))
    .into_response()
}

/// Rewrites error responses that did not come from [`error::ApiError`] (framework
/// rejections, timeouts, panics, oversized bodies) into the contract's error body.
async fn errors_as_json<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response.map(Body::new);
    }
    let (message, reason) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "this method is not allowed on this path",
            "INVALID_ARGUMENT",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("the request body is larger than 1 MiB", "INVALID_ARGUMENT")
        }
        StatusCode::SERVICE_UNAVAILABLE => ("the request took too long; try again", "UNAVAILABLE"),
        s if s.is_server_error() => (
            "internal error; the server log has the details under this request's X-Request-Id",
            "INTERNAL",
        ),
        _ => ("the request could not be handled", "INVALID_ARGUMENT"),
    };
    let body = stratus_types::ErrorBody {
        error: stratus_types::ErrorInfo {
            code: status.as_u16(),
            message: message.into(),
            details: vec![stratus_types::ErrorDetail {
                reason: reason.into(),
                field: None,
                description: None,
            }],
        },
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&body).expect("error bodies serialize")),
    )
}
