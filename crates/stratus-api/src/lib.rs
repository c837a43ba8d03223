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
pub mod openapi;
mod routes;
pub mod server;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// The router of the whole API over `app`: the public operations of the route table
/// ([`routes`]) with their document at `/openapi.json`, the host agents' protocol, the console.
pub fn router(app: Arc<App>) -> Router {
    let (public, document) = routes::public();
    let allowed = Arc::new(routes::AllowedMethods::of(&document));
    let document = handlers::meta::ApiDocument(Arc::new(
        serde_json::to_string(&document).expect("the document serializes"),
    ));
    let routes = public
        .merge(handlers::hosts::routes())
        .merge(handlers::deploy::routes())
        .merge(console::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(record_http_metrics))
        .layer(axum::Extension(document))
        .layer(axum::middleware::from_fn_with_state(allowed, allow_methods))
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
                    let path = handlers::deploy::redacted(request.uri().path());
                    tracing::info_span!(
                        "request",
                        otel.name = %format!("{} {}", request.method(), path),
                        otel.kind = "server",
                        method = %request.method(),
                        path = %path,
                        request_id,
                        principal = tracing::field::Empty,
                    )
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                run_to_completion,
            ))
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

/// Runs each request to its end, with its audit event, even when its client goes away first.
///
/// A client that hangs up (an agent taking its next step cuts its long poll short, a caller's
/// timeout, Ctrl-C) drops what serves its request. Dropped in the middle of a statement, a
/// database connection is in a state nobody knows, and is closed: under agents that cut polls
/// short by the hundreds a second, PostgreSQL was starting a new backend (and planning every
/// statement again) sixty times a second. A request that changes something would also be left
/// half done, or done without its audit event. On a task of its own the request finishes, and
/// only its answer is lost.
///
/// What a request only waits for is not worth finishing: [`ClientGone`] tells a long poll its
/// client left, and it ends before it reads anything. The region waits for the requests still
/// running when it shuts down ([`App::requests`]).
async fn run_to_completion(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    let gone = tokio_util::sync::CancellationToken::new();
    request
        .extensions_mut()
        .insert(app::ClientGone(gone.clone()));
    let _hung_up = gone.drop_guard();
    let serving = app
        .requests
        .spawn(next.run(request).instrument(tracing::Span::current()));
    match serving.await {
        Ok(response) => response,
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Counts each request by route template, method and status, and times it by route.
async fn record_http_metrics(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics::counter!(
        "stratus_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(
        "stratus_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The API's OpenAPI document: the operations of the route table in [`openapi`]'s frame.
pub fn document() -> utoipa::openapi::OpenApi {
    routes::public().1
}

/// The document as pretty JSON with a trailing newline, as committed in `openapi/stratus.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the document serializes");
    text.push('\n');
    text
}

/// Answers `OPTIONS` on a documented path with the methods it takes, refuses a method the
/// document does not give the path with 405 (the router alone would route `PATCH …/{id}:start`
/// to the operation on `…/{id}`), and names the documented methods in the `Allow` header of
/// every 405.
async fn allow_methods(
    axum::extract::State(allowed): axum::extract::State<Arc<routes::AllowedMethods>>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let Some(methods) = allowed.for_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    let allow =
        header::HeaderValue::from_str(&names.join(", ")).expect("method names are header values");
    if request.method() == axum::http::Method::OPTIONS {
        return (StatusCode::NO_CONTENT, [(header::ALLOW, allow)]).into_response();
    }
    let mut response = if methods.contains(request.method()) {
        next.run(request).await
    } else {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

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
