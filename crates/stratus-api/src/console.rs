//! The web console at `/console`: three static files compiled into the binary.
//!
//! The console is plain HTML, CSS and JavaScript with no build step and no third-party code, so
//! `cargo build` is all it needs and a region's console works on a machine without a network.
//! It talks to the same public API as every other client, with a token it obtains itself; the
//! server gives it nothing special. The files are served with a Content-Security-Policy that
//! allows only this origin, so even a bug in the page cannot load or send anything elsewhere.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const STYLE_CSS: &str = include_str!("../console/style.css");

/// Only this origin, no inline code, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/// The console's paths: the page, the page with a slash, its script and its style.
pub const PATHS: [&str; 4] = [
    "/console",
    "/console/",
    "/console/app.js",
    "/console/style.css",
];

/// The console's routes, to merge into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let [page, slash, script, style] = PATHS;
    Router::new()
        .route(
            page,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(slash, get(|| async { Redirect::permanent("/console") }))
        .route(
            script,
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            style,
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change with the binary; revalidating is cheap and never shows a stale console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
