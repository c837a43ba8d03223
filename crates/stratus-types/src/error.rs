//! The error body every failed request gets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error":{"code":<http status>,"message":"…","details":[…]}}`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

/// The contents of an error body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    /// The HTTP status code.
    pub code: u16,
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

/// A machine-readable reason, and the field it concerns when there is one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, `NOT_FOUND`,
    /// `ALREADY_EXISTS`, `FAILED_PRECONDITION`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `INTERNAL`.
    pub reason: String,
    /// JSON path of the offending field, e.g. `disks[0].sizeGb`, the query parameter, or the
    /// quota (`quotas.cpuCores`) a request would exceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
