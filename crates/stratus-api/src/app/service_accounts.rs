//! Service accounts (`/v1/regions/global/iam/service-accounts`), their client credentials, the
//! `client_credentials` grant, and reading the audit trail.
//!
//! A service account is a principal of its own that an organization's administrators (owner
//! or admin on the whole organization, or the region's operators) make for pipelines and other
//! machines. To anyone else its id does not exist (404). Its roles, like an API key's, never
//! exceed what its maker holds, and they are what its tokens carry. It authenticates with its
//! `clientId` and one of its client secrets: at most five active at a time, each shown once at
//! create, stored as SHA-256 and optionally expiring, so secrets can be rolled over without a
//! gap. Disabling the account or deleting a credential stops new tokens at once; introspection
//! reports tokens of a disabled account or a deleted or expired credential inactive.

use super::apikeys::display_name;
use super::authz::CredentialBounds;
use super::tokens::{hash_secret, new_secret};
use super::{
    App, AuditFilter, Caller, Paging, Permission, Principal, StatusFilter, check_text, now,
    resource_id,
};
use stratus_core::{Error, Result, ids};
use stratus_store::{AuditEventRecord, CredentialRecord, ServiceAccountRecord};
use stratus_types::auth::{
    AuditEvent, AuditEventList, Claims, Credential, CredentialCreateRequest, CredentialList,
    ServiceAccount, ServiceAccountCreateRequest, ServiceAccountList, ServiceAccountUpdateRequest,
    TokenResponse,
};
use uuid::Uuid;

/// Active credentials a service account may hold at once.
pub const MAX_ACTIVE_CREDENTIALS: usize = 5;

/// Prefix of service-account client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "stc_";

fn account_view(a: &ServiceAccountRecord) -> ServiceAccount {
    ServiceAccount {
        id: a.id.clone(),
        client_id: a.client_id.clone(),
        display_name: a.display_name.clone(),
        description: a.description.clone(),
        scope: a.scope.clone(),
        scope_id: a.scope_id.clone(),
        roles: a.roles.clone(),
        status: a.status.clone(),
        created_by: a.created_by.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

fn credential_view(c: &CredentialRecord, client_id: &str) -> Credential {
    Credential {
        id: c.id.clone(),
        service_account_id: c.service_account_id.clone(),
        client_id: client_id.to_owned(),
        status: if c.is_active(now()) {
            "active"
        } else {
            "expired"
        }
        .into(),
        created_at: c.created_at,
        expires_at: c.expires_at,
        last_used_at: c.last_used_at,
        client_secret: None,
    }
}

fn check_status(status: &str) -> Result<()> {
    if matches!(status, "active" | "disabled") {
        Ok(())
    } else {
        Err(Error::invalid(
            "status",
            format!("status is {status:?}; use active or disabled"),
        ))
    }
}

impl App {
    /// The account `id` if the principal may use `permission` on it (see
    /// [`Principal::manages`]); 404 otherwise.
    async fn administered_account(
        &self,
        principal: &Principal,
        id: &str,
        permission: Permission,
    ) -> Result<ServiceAccountRecord> {
        let id = resource_id("serviceAccountId", id)?;
        let not_found = || Error::NotFound(format!("service account {id} not found"));
        let account = self
            .store
            .get_service_account(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        let bounds = CredentialBounds {
            organization: &account.organization_id,
            scope: &account.scope,
            scope_id: &account.scope_id,
            roles: &account.roles,
            created_by: Some(&account.created_by),
        };
        if principal.manages(permission, &bounds) {
            Ok(account)
        } else {
            Err(not_found())
        }
    }

    pub async fn create_service_account(
        &self,
        caller: &Caller,
        body: ServiceAccountCreateRequest,
    ) -> Result<ServiceAccount> {
        let principal = &caller.principal;
        principal.authorize_here(Permission::ServiceAccountsCreate)?;
        let display_name = display_name(body.display_name)?;
        check_text("description", Some(&body.description), 1000)?;
        let description = body.description;
        let (scope, scope_id) = self
            .resolve_scope(principal, body.scope, body.scope_id)
            .await?;
        self.check_roles(principal, &scope, &body.roles)?;
        let id = ids::generate("sa").to_string();
        let at = now();
        let account = ServiceAccountRecord {
            uid: Uuid::new_v4(),
            client_id: format!("{id}@{}.iam", principal.tenant),
            id,
            organization_id: principal.tenant.clone(),
            display_name,
            description,
            scope,
            scope_id,
            roles: body.roles,
            status: "active".into(),
            created_by: principal.subject.clone(),
            created_at: at,
            updated_at: at,
        };
        self.store.create_service_account(&account).await?;
        Ok(account_view(&account))
    }

    pub async fn list_service_accounts(
        &self,
        caller: &Caller,
        paging: &Paging,
        filter: &StatusFilter,
    ) -> Result<ServiceAccountList> {
        let principal = &caller.principal;
        principal.authorize_here(Permission::ServiceAccountsList)?;
        let status = filter.status.clone();
        if let Some(status) = &status {
            check_status(status)?;
        }
        let query_key = format!("service-accounts:{}", principal.tenant);
        let request = self.pages.page_request(paging, &query_key)?;
        let page = self
            .store
            .list_service_accounts(Some(&principal.tenant), &request)
            .await?;
        Ok(ServiceAccountList {
            next_page_token: self.next_token(&page, &request, &query_key, |a| &a.id),
            service_accounts: page
                .items
                .iter()
                .filter(|a| status.as_ref().is_none_or(|s| &a.status == s))
                .filter(|a| {
                    principal.manages(
                        Permission::ServiceAccountsList,
                        &CredentialBounds {
                            organization: &a.organization_id,
                            scope: &a.scope,
                            scope_id: &a.scope_id,
                            roles: &a.roles,
                            created_by: Some(&a.created_by),
                        },
                    )
                })
                .map(account_view)
                .collect(),
        })
    }

    pub async fn get_service_account(&self, caller: &Caller, id: &str) -> Result<ServiceAccount> {
        let principal = &caller.principal;
        Ok(account_view(
            &self
                .administered_account(principal, id, Permission::ServiceAccountsGet)
                .await?,
        ))
    }

    pub async fn update_service_account(
        &self,
        caller: &Caller,
        id: &str,
        body: ServiceAccountUpdateRequest,
    ) -> Result<ServiceAccount> {
        let principal = &caller.principal;
        let mut account = self
            .administered_account(principal, id, Permission::ServiceAccountsUpdate)
            .await?;
        if let Some(name) = body.display_name {
            account.display_name = display_name(name)?;
        }
        if let Some(text) = body.description {
            check_text("description", Some(&text), 1000)?;
            account.description = text;
        }
        if let Some(roles) = body.roles {
            self.check_roles(principal, &account.scope, &roles)?;
            account.roles = roles;
        }
        if let Some(status) = body.status {
            check_status(&status)?;
            account.status = status;
        }
        account.updated_at = now();
        let stored = self
            .store
            .update_service_account(&account)
            .await?
            .ok_or_else(|| Error::NotFound(format!("service account {id} not found")))?;
        self.forget_live_tokens();
        Ok(account_view(&stored))
    }

    pub async fn delete_service_account(&self, caller: &Caller, id: &str) -> Result<()> {
        let principal = &caller.principal;
        let account = self
            .administered_account(principal, id, Permission::ServiceAccountsDelete)
            .await?;
        self.store.delete_service_account(&account.id).await?;
        self.forget_live_tokens();
        Ok(())
    }

    pub async fn create_credential(
        &self,
        caller: &Caller,
        account_id: &str,
        body: CredentialCreateRequest,
    ) -> Result<Credential> {
        let principal = &caller.principal;
        let account = self
            .administered_account(principal, account_id, Permission::ServiceAccountsUpdate)
            .await?;
        let at = now();
        if let Some(expires_at) = body.expires_at
            && expires_at <= at
        {
            return Err(Error::invalid(
                "expiresAt",
                "expiresAt must be in the future",
            ));
        }
        let secret = new_secret().replacen("stk_", CLIENT_SECRET_PREFIX, 1);
        let credential = CredentialRecord {
            uid: Uuid::new_v4(),
            id: ids::generate("cred").to_string(),
            service_account_id: account.id.clone(),
            secret_hash: hash_secret(&secret),
            expires_at: body.expires_at,
            created_at: at,
            last_used_at: None,
        };
        self.store
            .create_credential(&credential, MAX_ACTIVE_CREDENTIALS, at)
            .await?;
        Ok(Credential {
            client_secret: Some(secret),
            ..credential_view(&credential, &account.client_id)
        })
    }

    pub async fn list_credentials(
        &self,
        caller: &Caller,
        account_id: &str,
        filter: &StatusFilter,
    ) -> Result<CredentialList> {
        let principal = &caller.principal;
        let account = self
            .administered_account(principal, account_id, Permission::ServiceAccountsGet)
            .await?;
        let status = filter.status.as_deref();
        if let Some(status) = status
            && !matches!(status, "active" | "expired")
        {
            return Err(Error::invalid(
                "status",
                "status filters by active or expired",
            ));
        }
        let credentials = self
            .store
            .list_credentials(&account.id)
            .await?
            .iter()
            .map(|c| credential_view(c, &account.client_id))
            .filter(|c| status.is_none_or(|s| c.status == s))
            .collect();
        Ok(CredentialList {
            credentials,
            next_page_token: None,
        })
    }

    async fn account_credential(
        &self,
        principal: &Principal,
        account_id: &str,
        id: &str,
        permission: Permission,
    ) -> Result<(ServiceAccountRecord, CredentialRecord)> {
        let account = self
            .administered_account(principal, account_id, permission)
            .await?;
        let id = resource_id("id", id)?;
        let credential = self
            .store
            .get_credential(id.as_str())
            .await?
            .filter(|c| c.service_account_id == account.id)
            .ok_or_else(|| Error::NotFound(format!("credential {id} not found")))?;
        Ok((account, credential))
    }

    pub async fn get_credential(
        &self,
        caller: &Caller,
        account_id: &str,
        id: &str,
    ) -> Result<Credential> {
        let principal = &caller.principal;
        let (account, credential) = self
            .account_credential(principal, account_id, id, Permission::ServiceAccountsGet)
            .await?;
        Ok(credential_view(&credential, &account.client_id))
    }

    pub async fn delete_credential(
        &self,
        caller: &Caller,
        account_id: &str,
        id: &str,
    ) -> Result<()> {
        let principal = &caller.principal;
        let (_, credential) = self
            .account_credential(principal, account_id, id, Permission::ServiceAccountsUpdate)
            .await?;
        self.store.delete_credential(&credential.id).await?;
        self.forget_live_tokens();
        Ok(())
    }

    /// The `client_credentials` grant: a service account's client id and secret → a token
    /// carrying the account's roles.
    pub(crate) async fn mint_for_client(
        &self,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> Result<TokenResponse> {
        let client_id = client_id.ok_or_else(|| {
            Error::invalid(
                "client_id",
                "client_id is required for grant_type client_credentials",
            )
        })?;
        let secret = client_secret.ok_or_else(|| {
            Error::invalid(
                "client_secret",
                "client_secret is required for grant_type client_credentials",
            )
        })?;
        let refused = || Error::Unauthenticated("unknown client_id or client_secret".into());
        let credential = self
            .store
            .find_credential_by_hash(&hash_secret(secret.trim()))
            .await?
            .ok_or_else(refused)?;
        let account = self
            .store
            .get_service_account(&credential.service_account_id)
            .await?
            .filter(|a| a.client_id == client_id)
            .ok_or_else(refused)?;
        if !credential.is_active(now()) {
            return Err(Error::Unauthenticated(format!(
                "credential {} of {client_id} has expired",
                credential.id
            )));
        }
        if account.status != "active" {
            return Err(Error::Unauthenticated(format!(
                "service account {} is {}",
                account.id, account.status
            )));
        }
        self.store.touch_credential(credential.uid, now()).await?;
        let token = self.issuer.mint(Claims {
            sub: account.client_id.clone(),
            iss: String::new(),
            aud: String::new(),
            exp: 0,
            iat: 0,
            jti: String::new(),
            tenant_id: account.organization_id.clone(),
            scope: account.scope.clone(),
            scope_id: account.scope_id.clone(),
            roles: account.roles.clone(),
            principal_type: "service_account".into(),
            credential_id: Some(credential.id.clone()),
        })?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.issuer.ttl().as_secs(),
        })
    }

    /// Whether the credential behind a service account's token still works.
    pub(crate) async fn service_credential_active(&self, claims: &Claims) -> Result<bool> {
        let Some(id) = &claims.credential_id else {
            return Ok(false);
        };
        let Some(credential) = self.store.get_credential(id).await? else {
            return Ok(false);
        };
        let account = self
            .store
            .get_service_account(&credential.service_account_id)
            .await?;
        Ok(credential.is_active(now()) && account.is_some_and(|a| a.status == "active"))
    }

    /// Records an audit event (see [`crate::audit`]).
    pub async fn record_audit_event(&self, event: &AuditEventRecord) -> Result<()> {
        self.store.record_audit_event(event).await
    }

    /// `GET /v1/regions/global/audit/events`: the trail of an organization, for its owners and
    /// admins (operators: any organization, or all with no `organizationId`).
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        paging: &Paging,
        filter: &AuditFilter,
    ) -> Result<AuditEventList> {
        let principal = &caller.principal;
        let organization = match filter.organization_id.as_deref() {
            Some(org) => Some(resource_id("organizationId", org)?.to_string()),
            None if principal.is_super_admin() => None,
            None => Some(principal.tenant.clone()),
        };
        if let Some(org) = &organization
            && !principal.administers(org)
        {
            if principal.sees(org) {
                principal.must_administer("reading the audit trail")?;
            }
            return Err(Error::NotFound(format!("organization {org} not found")));
        }
        let query_key = format!("audit:{}", organization.as_deref().unwrap_or("*"));
        let request = self.pages.page_request(paging, &query_key)?;
        let page = self
            .store
            .list_audit_events(organization.as_deref(), &request)
            .await?;
        Ok(AuditEventList {
            next_page_token: self.next_token(&page, &request, &query_key, |e| &e.id),
            events: page
                .items
                .into_iter()
                .map(|e| AuditEvent {
                    id: e.id,
                    time: e.at,
                    principal: known(e.principal),
                    principal_type: known(e.principal_type),
                    organization_id: known(e.organization_id),
                    credential_id: known(e.credential_id),
                    method: e.method,
                    path: e.path,
                    status: e.status,
                    request_id: e.request_id,
                })
                .collect(),
        })
    }
}

/// The audit trail stores `-` for what an unauthenticated request did not say; the API omits it.
fn known(value: String) -> Option<String> {
    (value != "-").then_some(value)
}
