//! Identity: API keys, and the introspection and revocation of access tokens.

use crate::{Client, ListOptions, Result, all_pages, segment};
use reqwest::Method;
use stratus_types::auth::{
    ApiKey, ApiKeyCreateRequest, ApiKeyList, ApiKeyRotateRequest, ApiKeyUpdateRequest,
    IntrospectResponse, RevokeResponse, TokenBody,
};

const API_KEYS: &str = "/v1/regions/global/iam/apikeys";

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
}
