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
