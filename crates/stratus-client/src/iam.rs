//! Identity: API keys, service accounts and their credentials, the introspection and
//! revocation of access tokens, and the audit trail.

use crate::{Client, ListOptions, Result, all_pages, segment};
use reqwest::Method;
use stratus_types::auth::{
    ApiKey, ApiKeyCreateRequest, ApiKeyList, ApiKeyRotateRequest, ApiKeyUpdateRequest, AuditEvent,
    AuditEventList, Credential, CredentialCreateRequest, CredentialList, IntrospectResponse,
    RevokeResponse, ServiceAccount, ServiceAccountCreateRequest, ServiceAccountList,
    ServiceAccountUpdateRequest, TokenBody,
};

const API_KEYS: &str = "/v1/regions/global/iam/apikeys";
const SERVICE_ACCOUNTS: &str = "/v1/regions/global/iam/service-accounts";
const AUDIT_EVENTS: &str = "/v1/regions/global/audit/events";

/// The path of a service account, or of one of its sub-resources when `rest` is not empty.
fn account_path(id: &str, rest: &str) -> String {
    format!("{SERVICE_ACCOUNTS}/{}{rest}", segment(id))
}

impl Client {
    /// One page of the caller's API keys.
    pub async fn list_api_keys(&self, options: &ListOptions) -> Result<ApiKeyList> {
        let request = self.request(Method::GET, API_KEYS).query(&options.query());
        self.send(request).await
    }

    /// Every API key of the caller, following `nextPageToken`.
    pub async fn list_all_api_keys(&self) -> Result<Vec<ApiKey>> {
        all_pages(|options| async move {
            let page = self.list_api_keys(&options).await?;
            Ok((page.api_keys, page.next_page_token))
        })
        .await
    }

    /// One API key by id (never with its secret).
    pub async fn get_api_key(&self, id: &str) -> Result<ApiKey> {
        let path = format!("{API_KEYS}/{}", segment(id));
        self.send(self.request(Method::GET, &path)).await
    }

    /// Creates an API key; the answer holds its secret, the only time it is shown.
    pub async fn create_api_key(&self, body: &ApiKeyCreateRequest) -> Result<ApiKey> {
        self.send(self.request(Method::POST, API_KEYS).json(body))
            .await
    }

    /// Replaces the fields present in `body` (name, roles, `active`/`disabled`).
    pub async fn update_api_key(&self, id: &str, body: &ApiKeyUpdateRequest) -> Result<ApiKey> {
        let path = format!("{API_KEYS}/{}", segment(id));
        self.send(self.request(Method::PATCH, &path).json(body))
            .await
    }

    /// Deletes an API key; tokens minted from it stop working.
    pub async fn delete_api_key(&self, id: &str) -> Result<()> {
        let path = format!("{API_KEYS}/{}", segment(id));
        self.send_empty(self.request(Method::DELETE, &path)).await
    }

    /// Gives an API key a new secret (in the answer); the previous one keeps working for
    /// `grace_period_seconds`.
    pub async fn rotate_api_key(&self, id: &str, grace_period_seconds: u32) -> Result<ApiKey> {
        let path = format!("{API_KEYS}/{}:rotate", segment(id));
        let body = ApiKeyRotateRequest {
            grace_period_seconds: Some(grace_period_seconds),
        };
        self.send(self.request(Method::POST, &path).json(&body))
            .await
    }

    /// Whether `token` is active, and its claims when it is.
    pub async fn introspect_token(&self, token: &str) -> Result<IntrospectResponse> {
        let body = TokenBody {
            token: token.to_owned(),
        };
        let request = self
            .request(Method::POST, "/v1/regions/global/auth/introspect")
            .json(&body);
        self.send(request).await
    }

    /// Revokes `token` (the caller's own, or one of an organization the caller administers).
    pub async fn revoke_token(&self, token: &str) -> Result<RevokeResponse> {
        let body = TokenBody {
            token: token.to_owned(),
        };
        let request = self
            .request(Method::POST, "/v1/regions/global/auth/revoke")
            .json(&body);
        self.send(request).await
    }

    /// One page of the organization's service accounts (owners and admins).
    pub async fn list_service_accounts(&self, options: &ListOptions) -> Result<ServiceAccountList> {
        let request = self
            .request(Method::GET, SERVICE_ACCOUNTS)
            .query(&options.query());
        self.send(request).await
    }

    /// Every service account of the organization, following `nextPageToken`.
    pub async fn list_all_service_accounts(&self) -> Result<Vec<ServiceAccount>> {
        all_pages(|options| async move {
            let page = self.list_service_accounts(&options).await?;
            Ok((page.service_accounts, page.next_page_token))
        })
        .await
    }

    /// One service account by id.
    pub async fn get_service_account(&self, id: &str) -> Result<ServiceAccount> {
        self.send(self.request(Method::GET, &account_path(id, "")))
            .await
    }

    /// Makes a service account; its roles never exceed the caller's.
    pub async fn create_service_account(
        &self,
        body: &ServiceAccountCreateRequest,
    ) -> Result<ServiceAccount> {
        self.send(self.request(Method::POST, SERVICE_ACCOUNTS).json(body))
            .await
    }

    /// Replaces the fields present in `body` (name, description, roles, `active`/`disabled`).
    pub async fn update_service_account(
        &self,
        id: &str,
        body: &ServiceAccountUpdateRequest,
    ) -> Result<ServiceAccount> {
        let request = self
            .request(Method::PATCH, &account_path(id, ""))
            .json(body);
        self.send(request).await
    }

    /// Deletes a service account and its credentials.
    pub async fn delete_service_account(&self, id: &str) -> Result<()> {
        self.send_empty(self.request(Method::DELETE, &account_path(id, "")))
            .await
    }

    /// The credentials of a service account (never with their secrets).
    pub async fn list_credentials(&self, account: &str) -> Result<Vec<Credential>> {
        let path = account_path(account, "/credentials");
        let list: CredentialList = self.send(self.request(Method::GET, &path)).await?;
        Ok(list.credentials)
    }

    /// Makes a client secret for a service account; the answer holds `clientSecret`, the
    /// only time it is shown. An account has at most five active credentials (409 beyond).
    pub async fn create_credential(
        &self,
        account: &str,
        body: &CredentialCreateRequest,
    ) -> Result<Credential> {
        let path = account_path(account, "/credentials");
        self.send(self.request(Method::POST, &path).json(body))
            .await
    }

    /// One credential of a service account (without its secret).
    pub async fn get_credential(&self, account: &str, id: &str) -> Result<Credential> {
        let path = account_path(account, &format!("/credentials/{}", segment(id)));
        self.send(self.request(Method::GET, &path)).await
    }

    /// Deletes a credential: it mints no more tokens.
    pub async fn delete_credential(&self, account: &str, id: &str) -> Result<()> {
        let path = account_path(account, &format!("/credentials/{}", segment(id)));
        self.send_empty(self.request(Method::DELETE, &path)).await
    }

    /// One page of the audit trail, oldest first: of `organization`, else of the caller's own
    /// (operators without one: of every organization).
    pub async fn list_audit_events(
        &self,
        organization: Option<&str>,
        options: &ListOptions,
    ) -> Result<AuditEventList> {
        let mut query = options.query();
        if let Some(organization) = organization {
            query.push(("organizationId", organization.to_owned()));
        }
        self.send(self.request(Method::GET, AUDIT_EVENTS).query(&query))
            .await
    }

    /// The whole audit trail of `organization` (see [`Client::list_audit_events`]), oldest
    /// first, following `nextPageToken`.
    pub async fn list_all_audit_events(
        &self,
        organization: Option<&str>,
    ) -> Result<Vec<AuditEvent>> {
        all_pages(|options| async move {
            let page = self.list_audit_events(organization, &options).await?;
            Ok((page.events, page.next_page_token))
        })
        .await
    }
}
