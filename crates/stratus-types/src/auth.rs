//! Token endpoint bodies and the claims of Stratus access tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a token is asked for (the values of `grant_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ApiKey,
    ClientCredentials,
}

/// A role a credential holds: on an organization (`owner`, `admin`, `member`, `viewer`), on
/// a project (`admin`, `member`, `viewer`), or over the region (`super_admin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    SuperAdmin,
}

/// Where a credential's roles hold: its whole organization, or one project of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Organization,
    Project,
}

/// Whether an API key or a service account may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    Active,
    Disabled,
}

/// Whether a client secret may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    Active,
    Expired,
}

/// Body of `POST /v1/regions/global/auth/token`, discriminated by `grant_type`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `api_key` or `client_credentials`.
    #[schema(value_type = GrantType)]
    pub grant_type: String,
    /// The API key secret, for `grant_type = api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// A service account's client id, for `grant_type = client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// One of the service account's client secrets, for `grant_type = client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
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
    #[schema(value_type = Scope)]
    pub scope: String,
    /// The organization or project id the key acts in.
    pub scope_id: String,
    #[schema(value_type = Vec<Role>)]
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    #[schema(value_type = ActivationStatus)]
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
    #[schema(max_length = 100, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub display_name: String,
    /// `organization` (default) or `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Scope>)]
    pub scope: Option<String>,
    /// The organization or project; default: the caller's organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    /// Roles of the key: `owner`, `admin`, `member` (organization scope) or `admin`,
    /// `member`, `viewer` (project scope); never more than the caller holds.
    #[schema(value_type = Vec<Role>, min_items = 1)]
    pub roles: Vec<String>,
}

/// Body of `PATCH /v1/regions/global/iam/apikeys/{id}`: the fields to change.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Role>>, min_items = 1)]
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ActivationStatus>)]
    pub status: Option<String>,
}

/// Body of `POST /v1/regions/global/iam/apikeys/{id}:rotate` (optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRotateRequest {
    /// How long the previous secret keeps working, 0..=300 seconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 300)]
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

/// A service account: a non-human principal of an organization with roles; it authenticates
/// with `clientId` and one of its client secrets (grant `client_credentials`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    pub id: String,
    /// What the account presents as `client_id` (`<id>@<organization>.iam`).
    pub client_id: String,
    pub display_name: String,
    pub description: String,
    /// `organization` or `project`.
    #[schema(value_type = Scope)]
    pub scope: String,
    pub scope_id: String,
    #[schema(value_type = Vec<Role>)]
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    #[schema(value_type = ActivationStatus)]
    pub status: String,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Body of `POST /v1/regions/global/iam/service-accounts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountCreateRequest {
    #[serde(default)]
    #[schema(max_length = 100, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// `organization` (default) or `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Scope>)]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    #[schema(value_type = Vec<Role>, min_items = 1)]
    pub roles: Vec<String>,
}

/// Body of `PATCH /v1/regions/global/iam/service-accounts/{id}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Role>>, min_items = 1)]
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ActivationStatus>)]
    pub status: Option<String>,
}

/// A page of service accounts.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountList {
    pub service_accounts: Vec<ServiceAccount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A client secret of a service account. The secret itself is shown once, at create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub id: String,
    pub service_account_id: String,
    pub client_id: String,
    /// `active` or `expired`.
    #[schema(value_type = CredentialStatus)]
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The secret, in the answer to create only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// Body of `POST …/service-accounts/{id}/credentials` (optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialCreateRequest {
    /// When the credential stops working; never, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The credentials of a service account.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialList {
    pub credentials: Vec<Credential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One mutating API request in the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    pub time: chrono::DateTime<chrono::Utc>,
    /// The principal's subject; absent when the request carried no acceptable token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<String>,
    /// The principal's organization; absent when the request carried no acceptable token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::names::ResourceId>)]
    pub organization_id: Option<String>,
    /// The API key, service-account credential or OIDC issuer behind the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub request_id: String,
}

/// A page of audit events, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One question of `auth/check`: may the subject do `action` on `resource`?
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionCheck {
    /// A permission, `{service}.{resource}.{verb}` (e.g. `compute.instances.create`).
    pub action: String,
    /// The project or organization id the action would touch.
    pub resource: String,
}

/// Body of `POST /v1/regions/global/auth/check`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Whose permissions: an API key id or a service account's client id; the caller when
    /// absent. Asking about someone else needs administering their organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// 1 to 100 questions, answered in order.
    #[schema(min_items = 1, max_items = 100)]
    pub checks: Vec<PermissionCheck>,
}

/// One answer of `auth/check`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub allowed: bool,
}

/// Answer of `POST /v1/regions/global/auth/check`, positional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckResponse {
    pub results: Vec<CheckResult>,
}
