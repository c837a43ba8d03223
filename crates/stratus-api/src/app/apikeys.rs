//! API keys (`/v1/regions/global/iam/apikeys`), token introspection and revocation.
//!
//! An API key is a principal of its own: its tokens carry the key's id as `sub`, its own
//! scope (its organization, or one project of it) and its own roles, which never exceed
//! what its maker held when making it. It does not act as its maker, so a `member` key made
//! by an administrator cannot see, rotate or disable the administrator's other keys, nor
//! revoke the administrator's tokens.
//!
//! Managing keys takes the `iam.apikeys.*` permissions (organization owners and admins,
//! project admins for their project), and even then only keys that hold nothing the caller
//! does not: an administrator manages the keys of its organization within its own power, a
//! project admin the keys it made itself. Every other key does not exist for the caller
//! (404), so key ids cannot be enumerated. A key's secret is shown once, at create and at
//! `:rotate`, and only its SHA-256 is kept. Rotation can leave the previous secret working
//! for a grace period of up to five minutes, so clients can switch without an outage.
//!
//! Revoking an access token records its `jti` until the token would have expired anyway.
//! Every request checks that its token is live: not revoked, and its API key or service-account
//! credential still active. A replica remembers a token it found live for one second
//! ([`LIVENESS_TTL`]) so that a busy client does not cost a database lookup per request, and
//! forgets everything it remembered whenever a token is revoked or a key, account or
//! credential changes through it; so a revoked or cut-off token stops at once on the replica
//! that cut it off and within a second on every other.

use super::Permission;
use super::authz::{CredentialBounds, ORGANIZATION_ROLES, PROJECT_ROLES};
use super::tokens::{hash_secret, new_secret};
use super::{ApiKeyFilters, App, Caller, Paging, Principal, now, resource_id};
use chrono::{DateTime, Utc};
use stratus_core::{Error, Result, ids};
use stratus_store::{ApiKeyRecord, RevokedTokenRecord};
use stratus_types::auth::{
    ApiKey, ApiKeyCreateRequest, ApiKeyList, ApiKeyRotateRequest, ApiKeyUpdateRequest, Claims,
    IntrospectResponse, RevokeResponse,
};
use uuid::Uuid;

/// How long a replica trusts its last finding that a token is live.
pub const LIVENESS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest grace period of a rotated secret.
const MAX_GRACE_SECONDS: u32 = 300;

/// What the rules for managing keys look at in `key`.
fn key_bounds(key: &ApiKeyRecord) -> CredentialBounds<'_> {
    CredentialBounds {
        organization: &key.organization_id,
        scope: &key.scope,
        scope_id: &key.scope_id,
        roles: &key.roles,
        created_by: Some(&key.created_by),
    }
}

fn api_key_view(key: &ApiKeyRecord) -> ApiKey {
    ApiKey {
        id: key.id.clone(),
        display_name: key.display_name.clone(),
        scope: key.scope.clone(),
        scope_id: key.scope_id.clone(),
        roles: key.roles.clone(),
        status: key.status.clone(),
        created_by: key.created_by.clone(),
        created_at: key.created_at,
        last_used_at: key.last_used_at,
        last_rotated_at: key.last_rotated_at,
        secret: None,
        previous_secret_expires_at: None,
    }
}

pub(crate) fn display_name(name: String) -> Result<String> {
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "displayName",
            "displayName must be at most 100 printable characters",
        ));
    }
    Ok(name)
}

impl App {
    /// Refuses a token that was revoked, or whose API key or service-account credential was
    /// disabled, expired or deleted since it was minted: such tokens stop working at once.
    pub async fn ensure_token_live(&self, claims: &Claims) -> Result<()> {
        if self.recently_live(&claims.jti) {
            return Ok(());
        }
        self.check_token_live(claims).await?;
        if !claims.jti.is_empty()
            && let Ok(mut live) = self.live_tokens.lock()
        {
            if live.len() > 100_000 {
                live.clear();
            }
            live.insert(claims.jti.clone(), std::time::Instant::now());
        }
        Ok(())
    }

    fn recently_live(&self, jti: &str) -> bool {
        !jti.is_empty()
            && self.live_tokens.lock().is_ok_and(|live| {
                live.get(jti)
                    .is_some_and(|checked| checked.elapsed() < LIVENESS_TTL)
            })
    }

    /// Forgets which tokens were live: called whenever a token is revoked or a credential
    /// changes, so this replica decides afresh at once.
    pub(crate) fn forget_live_tokens(&self) {
        if let Ok(mut live) = self.live_tokens.lock() {
            live.clear();
        }
    }

    async fn check_token_live(&self, claims: &Claims) -> Result<()> {
        let refused = |why: &str| {
            Err(Error::Unauthenticated(format!(
                "invalid bearer token: {why}"
            )))
        };
        if !claims.jti.is_empty() && self.store.is_token_revoked(&claims.jti).await? {
            return refused("revoked");
        }
        let (live, why) = match (claims.principal_type.as_str(), &claims.credential_id) {
            ("api_key", Some(id)) => (
                self.store
                    .get_api_key(id)
                    .await?
                    .is_some_and(|k| k.status == "active"),
                "its API key was disabled or deleted",
            ),
            ("service_account", _) => (
                self.service_credential_active(claims).await?,
                "its service account or credential is no longer active",
            ),
            // An external issuer names organizations by itself; only existing ones count.
            _ if claims.iss != self.issuer.issuer() => (
                self.store
                    .get_organization(&claims.tenant_id)
                    .await?
                    .is_some(),
                "it names an organization that does not exist here",
            ),
            _ => (true, ""),
        };
        if !live {
            return refused(why);
        }
        Ok(())
    }

    /// The key `id` if the principal may use `permission` on it; to anyone else it does not
    /// exist (404), so key ids cannot be probed.
    async fn managed_api_key(
        &self,
        principal: &Principal,
        id: &str,
        permission: Permission,
    ) -> Result<ApiKeyRecord> {
        let id = resource_id("id", id)?;
        let not_found = || Error::NotFound(format!("API key {id} not found"));
        let key = self
            .store
            .get_api_key(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        if principal.manages(permission, &key_bounds(&key)) {
            Ok(key)
        } else {
            Err(not_found())
        }
    }

    /// Checks that the principal may give a key or account `roles` at `scope`.
    pub(crate) fn check_roles(
        &self,
        principal: &Principal,
        scope: &str,
        roles: &[String],
    ) -> Result<()> {
        if roles.is_empty() {
            return Err(Error::invalid("roles", "a key needs at least one role"));
        }
        let known = if scope == "project" {
            PROJECT_ROLES
        } else {
            ORGANIZATION_ROLES
        };
        for role in roles {
            let is_operator_role = role == super::authz::SUPER_ADMIN;
            if !known.contains(&role.as_str()) && !is_operator_role {
                return Err(Error::invalid(
                    "roles",
                    format!(
                        "unknown role {role:?} for {scope} scope; use one of {}",
                        known.join(", ")
                    ),
                ));
            }
            if !principal.can_grant(scope, role) {
                return Err(Error::PermissionDenied(format!(
                    "role {role} grants more than the caller holds ([{}] on {} {})",
                    principal.roles.join(", "),
                    principal.scope,
                    principal.scope_id
                )));
            }
        }
        Ok(())
    }

    /// The scope a new key or service account acts in: the caller's organization (default) or
    /// one of its projects, never wider than the caller's own scope.
    pub(crate) async fn resolve_scope(
        &self,
        principal: &Principal,
        scope: Option<String>,
        scope_id: Option<String>,
    ) -> Result<(String, String)> {
        let scope = scope.unwrap_or_else(|| "organization".into());
        let scope_id = match scope.as_str() {
            "organization" => {
                let org = scope_id.unwrap_or_else(|| principal.tenant.clone());
                if org != principal.tenant {
                    return Err(Error::invalid(
                        "scopeId",
                        format!(
                            "keys and service accounts act in the caller's organization {}",
                            principal.tenant
                        ),
                    ));
                }
                if principal.scope == "project" && !principal.is_super_admin() {
                    return Err(Error::PermissionDenied(
                        "a caller with roles on one project acts for that project only".into(),
                    ));
                }
                org
            }
            "project" => {
                let project = scope_id.ok_or_else(|| {
                    Error::invalid("scopeId", "scopeId names the project of project scope")
                })?;
                let record = self.store.get_project(&project).await?;
                let visible = record
                    .as_ref()
                    .is_some_and(|p| p.organization_id == principal.tenant);
                if !visible {
                    return Err(Error::invalid(
                        "scopeId",
                        format!(
                            "project {project} does not exist in organization {}",
                            principal.tenant
                        ),
                    ));
                }
                if principal.scope == "project"
                    && principal.scope_id != project
                    && !principal.is_super_admin()
                {
                    return Err(Error::PermissionDenied(format!(
                        "the caller holds roles on project {} only",
                        principal.scope_id
                    )));
                }
                project
            }
            other => {
                return Err(Error::invalid(
                    "scope",
                    format!("scope is {other:?}; use organization or project"),
                ));
            }
        };
        Ok((scope, scope_id))
    }

    /// `POST /v1/regions/global/iam/apikeys`.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        body: ApiKeyCreateRequest,
    ) -> Result<ApiKey> {
        let principal = &caller.principal;
        let display_name = display_name(body.display_name)?;
        let (scope, scope_id) = self
            .resolve_scope(principal, body.scope, body.scope_id)
            .await?;
        principal.authorize_here(Permission::ApiKeysCreate)?;
        self.check_roles(principal, &scope, &body.roles)?;
        let secret = new_secret();
        let record = ApiKeyRecord {
            uid: Uuid::new_v4(),
            id: ids::generate("key").to_string(),
            secret_hash: hash_secret(&secret),
            organization_id: principal.tenant.clone(),
            scope,
            scope_id,
            roles: body.roles,
            created_by: principal.subject.clone(),
            display_name,
            created_at: now(),
            last_used_at: None,
            status: "active".into(),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            last_rotated_at: None,
        };
        self.store.create_api_key(&record).await?;
        Ok(ApiKey {
            secret: Some(secret),
            ..api_key_view(&record)
        })
    }

    /// `GET /v1/regions/global/iam/apikeys`: the keys the caller made, or with `createdBy=*`
    /// (or another maker's id) every key of its organization it manages.
    pub async fn list_api_keys(
        &self,
        caller: &Caller,
        paging: &Paging,
        filters: &ApiKeyFilters,
    ) -> Result<ApiKeyList> {
        let principal = &caller.principal;
        principal.authorize_here(Permission::ApiKeysList)?;
        let status = filters.status.clone();
        if let Some(s) = &status
            && !matches!(s.as_str(), "active" | "disabled")
        {
            return Err(Error::invalid(
                "status",
                "status filters by active or disabled",
            ));
        }
        let created_by = match filters.created_by.as_deref() {
            None => Some(principal.subject.as_str()),
            Some("*") => None,
            Some(maker) => Some(maker),
        };
        let query_key = format!(
            "apikeys:{}:{}",
            principal.subject,
            created_by.unwrap_or("*")
        );
        let request = self.pages.page_request(paging, &query_key)?;
        let organization = (!principal.is_super_admin()).then_some(principal.tenant.as_str());
        let page = self
            .store
            .list_api_keys(organization, created_by, &request)
            .await?;
        Ok(ApiKeyList {
            next_page_token: self.next_token(&page, &request, &query_key, |k| &k.id),
            api_keys: page
                .items
                .iter()
                .filter(|k| status.as_ref().is_none_or(|s| &k.status == s))
                .filter(|k| principal.manages(Permission::ApiKeysList, &key_bounds(k)))
                .map(api_key_view)
                .collect(),
        })
    }

    pub async fn get_api_key(&self, caller: &Caller, id: &str) -> Result<ApiKey> {
        let principal = &caller.principal;
        Ok(api_key_view(
            &self
                .managed_api_key(principal, id, Permission::ApiKeysGet)
                .await?,
        ))
    }

    pub async fn update_api_key(
        &self,
        caller: &Caller,
        id: &str,
        body: ApiKeyUpdateRequest,
    ) -> Result<ApiKey> {
        let principal = &caller.principal;
        let mut key = self
            .managed_api_key(principal, id, Permission::ApiKeysUpdate)
            .await?;
        if let Some(name) = body.display_name {
            key.display_name = display_name(name)?;
        }
        if let Some(roles) = body.roles {
            self.check_roles(principal, &key.scope, &roles)?;
            key.roles = roles;
        }
        if let Some(status) = body.status {
            if !matches!(status.as_str(), "active" | "disabled") {
                return Err(Error::invalid(
                    "status",
                    format!("status is {status:?}; use active or disabled"),
                ));
            }
            key.status = status;
        }
        let stored = self
            .store
            .update_api_key(&key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("API key {id} not found")))?;
        self.forget_live_tokens();
        Ok(api_key_view(&stored))
    }

    pub async fn delete_api_key(&self, caller: &Caller, id: &str) -> Result<()> {
        let principal = &caller.principal;
        self.managed_api_key(principal, id, Permission::ApiKeysDelete)
            .await?;
        self.store.delete_api_key(id).await?;
        self.forget_live_tokens();
        Ok(())
    }

    /// `POST /v1/regions/global/iam/apikeys/{id}:rotate`: a new secret; the previous one keeps
    /// working for `gracePeriodSeconds`.
    pub async fn rotate_api_key(
        &self,
        caller: &Caller,
        id: &str,
        body: ApiKeyRotateRequest,
    ) -> Result<ApiKey> {
        let principal = &caller.principal;
        let grace = body.grace_period_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECONDS {
            return Err(Error::invalid(
                "gracePeriodSeconds",
                format!("gracePeriodSeconds is {grace}; at most {MAX_GRACE_SECONDS}"),
            ));
        }
        let mut key = self
            .managed_api_key(principal, id, Permission::ApiKeysUpdate)
            .await?;
        if key.status != "active" {
            return Err(Error::FailedPrecondition(format!(
                "API key {id} is {}; activate it before rotating",
                key.status
            )));
        }
        let rotated_at = now();
        let secret = new_secret();
        let previous_expires: Option<DateTime<Utc>> =
            (grace > 0).then(|| rotated_at + chrono::Duration::seconds(grace.into()));
        key.previous_secret_hash = previous_expires.map(|_| key.secret_hash.clone());
        key.previous_secret_expires_at = previous_expires;
        key.secret_hash = hash_secret(&secret);
        key.last_rotated_at = Some(rotated_at);
        let stored = self
            .store
            .update_api_key(&key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("API key {id} not found")))?;
        Ok(ApiKey {
            secret: Some(secret),
            previous_secret_expires_at: previous_expires,
            ..api_key_view(&stored)
        })
    }

    /// `POST /v1/regions/global/auth/introspect`: whether a token is active, and its claims.
    pub async fn introspect(&self, _: &Caller, token: &str) -> Result<IntrospectResponse> {
        let inactive = IntrospectResponse::default();
        let Ok(claims) = self.verify_token(token).await else {
            return Ok(inactive);
        };
        match self.ensure_token_live(&claims).await {
            Ok(()) => {}
            Err(Error::Unauthenticated(_)) => return Ok(inactive),
            Err(other) => return Err(other),
        }
        Ok(IntrospectResponse {
            active: true,
            claims: Some(claims),
        })
    }

    /// `POST /v1/regions/global/auth/revoke`: always "revoked"; a token is put on the deny
    /// list when it is the caller's own, or the caller administers its organization and
    /// holds at least the token's roles (nobody cuts off a principal above them).
    pub async fn revoke(&self, caller: &Caller, token: &str) -> Result<RevokeResponse> {
        let principal = &caller.principal;
        if let Ok(claims) = self.verify_token(token).await {
            let own = claims.sub == principal.subject;
            let above = principal.administers(&claims.tenant_id)
                && principal.holds_all(&claims.scope, &claims.roles);
            if own || above {
                let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(now);
                self.store
                    .revoke_token(&RevokedTokenRecord {
                        jti: claims.jti,
                        expires_at,
                    })
                    .await?;
                self.forget_live_tokens();
            }
        }
        Ok(RevokeResponse { revoked: true })
    }
}
