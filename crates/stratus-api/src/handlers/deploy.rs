//! `/internal/v1/deploy/{token}/…`: what a bare-metal server's BMC and deploy ramdisk fetch
//! (not part of the public API). The token in the path is the only credential
//! ([`crate::app::deploy`]).

use crate::app::App;
use crate::error::ApiResult;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use std::sync::Arc;
use stratus_core::Error;

const PREFIX: &str = "/internal/v1/deploy/";

/// `path` as logs and traces may show it: a deploy path's token (its only credential) is
/// left out.
pub fn redacted(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(PREFIX) {
        Some(rest) => {
            let after = rest.split_once('/').map_or("", |(_, after)| after);
            format!("{PREFIX}{{token}}/{after}").into()
        }
        None => path.into(),
    }
}

/// The deploy routes, on the router of the whole API.
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/internal/v1/deploy/{token}/ramdisk.iso", get(ramdisk))
        .route("/internal/v1/deploy/{token}/task", get(task))
        .route("/internal/v1/deploy/{token}/image", get(image))
        .route("/internal/v1/deploy/{token}/result", post(result))
        .route("/internal/v1/deploy/{token}/seed.iso", get(seed))
}

fn bytes(content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("a valid response")
}

async fn ramdisk(State(app): State<Arc<App>>, Path(token): Path<String>) -> ApiResult<Response> {
    let iso = app.deploy_ramdisk(&token)?;
    Ok(bytes("application/octet-stream", iso))
}

async fn task(State(app): State<Arc<App>>, Path(token): Path<String>) -> ApiResult<Response> {
    Ok(bytes(
        "text/plain",
        format!("{}\n", app.deploy_task(&token)?),
    ))
}

async fn image(State(app): State<Arc<App>>, Path(token): Path<String>) -> ApiResult<Response> {
    let found = app.deploy_image(&token)?;
    let file = tokio::fs::File::open(&found.path)
        .await
        .map_err(|e| Error::internal(format!("opening {}: {e}", found.path.display())))?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, found.length)
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
        .expect("a valid response"))
}

async fn result(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let text = String::from_utf8_lossy(&body);
    app.deploy_result(&token, &text)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn seed(State(app): State<Arc<App>>, Path(token): Path<String>) -> ApiResult<Response> {
    let seed = app.deploy_seed(&token)?;
    Ok(bytes("application/octet-stream", seed.as_ref().clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_never_see_a_deploy_token() {
        assert_eq!(
            super::redacted("/internal/v1/deploy/0123abcd/seed.iso"),
            "/internal/v1/deploy/{token}/seed.iso"
        );
        assert_eq!(super::redacted("/v1/regions"), "/v1/regions");
    }
}
