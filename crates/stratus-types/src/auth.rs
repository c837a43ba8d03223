//! Token endpoint bodies and the claims of Stratus access tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/regions/global/auth/token`, discriminated by `grant_type`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `api_key` (the only grant this region accepts so far).
    pub grant_type: String,
    /// The API key secret, for `grant_type = api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// A minted access token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT signed by the region's issuer (keys at `/.well-known/jwks.json`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// Claims of a Stratus access token (the contract's claim set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The organization (tenant) the principal acts in.
    pub tenant_id: String,
    /// `organization` or `project`.
    pub scope: String,
    pub scope_id: String,
    pub roles: Vec<String>,
    /// `user`, `api_key` or `service_account`.
    pub principal_type: String,
    /// The API key or credential the token was minted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

/// An API key: a long-lived secret its owner exchanges for access tokens (grant `api_key`).
/// The secret itself appears only in the answers to create and `:rotate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub display_name: String,
    /// `organization` or `project`.
    pub scope: String,
    /// The organization or project id the key acts in.
    pub scope_id: String,
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// The principal that made the key.
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The secret, shown once: in the answer to create and to `:rotate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// After `:rotate` with a grace period: until when the previous secret still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Body of `POST /v1/regions/global/iam/apikeys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyCreateRequest {
    #[serde(default)]
    pub display_name: String,
    /// `organization` (default) or `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The organization or project; default: the caller's organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// Roles of the key: `owner`, `admin`, `member` (organization scope) or `admin`,
    /// `member`, `viewer` (project scope); never more than the caller holds.
    pub roles: Vec<String>,
}

/// Body of `PATCH /v1/regions/global/iam/apikeys/{id}`: the fields to change.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Body of `POST /v1/regions/global/iam/apikeys/{id}:rotate` (optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRotateRequest {
    /// How long the previous secret keeps working, 0..=300 seconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// A page of API keys.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Body of `POST /v1/regions/global/auth/introspect` and `…/auth/revoke`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub token: String,
}

/// What `auth/introspect` tells of a token: only `active: false` for a token that is not
/// (expired, revoked, malformed, or its credential disabled), else its claims.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Claims>,
}

/// Answer of `auth/revoke`: always `{"revoked": true}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeResponse {
    pub revoked: bool,
}
