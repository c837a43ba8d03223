//! What can go wrong talking to a region, keeping the API's own error body intact.

use stratus_types::{ErrorBody, ErrorDetail};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The region answered with an error body (4xx/5xx).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The endpoint given is not an http(s) URL.
    #[error("{0:?} is not an endpoint: use an http:// or https:// URL")]
    InvalidEndpoint(String),
    /// The region could not be reached, or the connection broke.
    #[error("cannot reach {url}: {}", root_cause(source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The region answered something that is not what the API documents.
    #[error("unexpected answer from {url} (HTTP {status}): {message}")]
    Unexpected {
        url: String,
        status: u16,
        message: String,
    },
}

/// The innermost cause ("Connection refused (os error 111)"), which says more than reqwest's
/// outer "error sending request".
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

impl Error {
    /// The API error, when the region answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }
}

/// An error answer of the API: its HTTP status and the contract's body.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
    /// The `X-Request-Id` of the failed request, for the server's log.
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn message(&self) -> &str {
        &self.body.error.message
    }

    /// The first detail (reason and field), if the body has one.
    pub fn detail(&self) -> Option<&ErrorDetail> {
        self.body.error.details.first()
    }

    /// The field at fault, e.g. `type` or `disks[0].sizeGb`.
    pub fn field(&self) -> Option<&str> {
        self.body
            .error
            .details
            .iter()
            .find_map(|d| d.field.as_deref())
    }

    /// The machine-readable reason, e.g. `INVALID_ARGUMENT`.
    pub fn reason(&self) -> Option<&str> {
        self.detail().map(|d| d.reason.as_str())
    }
}

impl std::fmt::Display for ApiError {
    /// One line: the status, the message, and the field when the message does not name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}", self.message(), self.status)?;
        if let Some(reason) = self.reason() {
            write!(f, " {reason}")?;
        }
        if let Some(field) = self.field() {
            write!(f, ", field {field}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for ApiError {}
