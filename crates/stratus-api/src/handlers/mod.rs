//! HTTP handlers: thin glue from a request to one application function.

pub mod catalog;
pub mod deploy;
pub mod host_operations;
pub mod hosts;
pub mod iam;
pub mod instances;
pub mod meta;
pub mod networks;
pub mod servers;
pub mod tenancy;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON response carrying the resource's ETag.
pub(crate) fn with_etag<T: Serialize>(status: StatusCode, body: T, etag: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
