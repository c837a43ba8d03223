//! The one error type of Stratus.
//!
//! Every layer returns [`Error`]; the API maps it to an HTTP status and the contract's error body
//! in exactly one place. Variants carry text meant for the caller. Internal failures carry text
//! meant for the operator: the API logs it with the request id and sends only a generic
//! message, so a 5xx never leaks internals.

/// A bad value in a request, with the JSON path or parameter it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path (`disks[0].sizeGb`) or query/path parameter name (`pageSize`).
    pub field: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed; `fields` names what is wrong.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        fields: Vec<FieldError>,
    },
    /// 401: no credential, or one that is not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the credential is valid but lacks a permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409: the resource is in a state that does not allow the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// 412: `If-Match` named an older version of the resource.
    #[error("{0}")]
    StaleVersion(String),
    /// 409: not enough capacity (or quota) for the request.
    #[error("{0}")]
    ResourceExhausted(String),
    /// 409: the request would take its organization past a quota.
    #[error("{0}")]
    QuotaExceeded(Box<crate::quota::Exceeded>),
    /// 413: the request body is larger than the server takes.
    #[error("{0}")]
    TooLarge(String),
    /// 503: a dependency (the database) is unreachable; the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the text is for the operator's log only.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A 400 naming one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let field = field.into();
        let description = description.into();
        Error::InvalidArgument {
            message: format!("invalid value for {field}: {description}"),
            fields: vec![FieldError { field, description }],
        }
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }
}
