//! The one place where a Stratus error becomes an HTTP response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_core::Error;
use stratus_types::{ErrorBody, ErrorDetail, ErrorInfo};

/// An [`Error`] on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// HTTP status and `details[].reason` of an error.
pub fn status_and_reason(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::InvalidArgument { .. } => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Error::PermissionDenied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Error::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Error::FailedPrecondition(_) => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
        Error::StaleVersion(_) => (StatusCode::PRECONDITION_FAILED, "FAILED_PRECONDITION"),
        Error::ResourceExhausted(_) | Error::QuotaExceeded(_) => {
            (StatusCode::CONFLICT, "RESOURCE_EXHAUSTED")
        }
        Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "INVALID_ARGUMENT"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// The contract's error object for `e` (the body's `error`), as a batch result item holds it.
pub fn error_info(e: &Error) -> ErrorInfo {
    let (status, reason) = status_and_reason(e);
    let (message, details) = message_and_details(e, reason);
    ErrorInfo {
        code: status.as_u16(),
        message,
        details,
    }
}

fn message_and_details(e: &Error, reason: &'static str) -> (String, Vec<ErrorDetail>) {
    match e {
        Error::InvalidArgument { message, fields } => (
            message.clone(),
            fields
                .iter()
                .map(|f| ErrorDetail {
                    reason: reason.into(),
                    field: Some(f.field.clone()),
                    description: Some(f.description.clone()),
                })
                .collect(),
        ),
        Error::QuotaExceeded(exceeded) => (
            exceeded.to_string(),
            vec![ErrorDetail {
                reason: reason.into(),
                field: Some(format!("quotas.{}", exceeded.quota)),
                description: Some(format!(
                    "limit {}, in use {}, requested {}",
                    exceeded.limit, exceeded.usage, exceeded.requested
                )),
            }],
        ),
        Error::Internal(internal) => {
            tracing::error!(error = %internal, "internal error");
            (
                "internal error; the server log has the details under this request's X-Request-Id"
                    .to_owned(),
                vec![ErrorDetail {
                    reason: reason.into(),
                    field: None,
                    description: None,
                }],
            )
        }
        other => (
            other.to_string(),
            vec![ErrorDetail {
                reason: reason.into(),
                field: None,
                description: None,
            }],
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_and_reason(&self.0).0;
        let error = error_info(&self.0);
        if status.is_server_error() {
            tracing::warn!(%status, message = %error.message, "request failed");
        }
        let body = ErrorBody { error };
        let mut response = (status, axum::Json(body)).into_response();
        match &self.0 {
            Error::Unauthenticated(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        response
    }
}
