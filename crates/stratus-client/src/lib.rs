//! A typed async client of the Stratus API.
//!
//! Every request and response body is a type from `stratus-types`, the same types the server
//! serializes, so the client cannot drift from the API: a renamed field breaks the build, not a
//! user's script. The client is deliberately thin: one method per operation, no retries, no
//! caching, no token refresh. Those are policies of its users (the CLI refreshes tokens from a
//! stored API key or client credentials; tests want to see every answer), so they live there.
//!
//! A failed call returns [`Error::Api`] carrying the contract's error body untouched, so a
//! caller can show the message, branch on the reason and point at the field at fault.
//!
//! ```no_run
//! # async fn demo() -> Result<(), stratus_client::Error> {
//! let mut client = stratus_client::Client::new("http://127.0.0.1:8080")?;
//! let token = client.exchange_api_key("stratus_…").await?;
//! client.set_token(Some(token.access_token));
//! let instances = client.instances("local-1", "default").list_all(None).await?;
//! # Ok(()) }
//! ```

mod catalog;
mod error;
mod iam;
mod instances;
mod networks;
mod servers;
mod tenancy;
mod watch;

pub use catalog::Catalog;
pub use error::{ApiError, Error};
pub use instances::{InstanceAction, Instances};
pub use networks::Networks;
pub use servers::Servers;
pub use stratus_types as types;
pub use watch::{InstanceWatch, WatchOptions};

use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use stratus_types::ErrorBody;
use stratus_types::auth::{TokenRequest, TokenResponse};

/// Result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

/// A connection to one Stratus endpoint, optionally holding an access token.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A resource with the `ETag` of the version read, for a later `If-Match`.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: Option<String>,
}

/// A successful answer, before decoding.
struct Answer {
    url: String,
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

/// Paging and filtering of a list call.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// 1 to 500; the server's default (50) when absent.
    pub page_size: Option<u32>,
    /// `nextPageToken` of the previous page.
    pub page_token: Option<String>,
    /// `k=v,k2!=v2` (instances only).
    pub label_selector: Option<String>,
}

impl ListOptions {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(size) = self.page_size {
            query.push(("pageSize", size.to_string()));
        }
        if let Some(token) = &self.page_token {
            query.push(("pageToken", token.clone()));
        }
        if let Some(selector) = &self.label_selector {
            query.push(("labelSelector", selector.clone()));
        }
        query
    }
}

/// Collects every item of a paged list: calls `page` with each `nextPageToken` in turn,
/// starting from the largest page the API allows.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let mut options = ListOptions {
        page_size: Some(500),
        ..ListOptions::default()
    };
    let mut all = Vec::new();
    loop {
        let (items, next) = page(options.clone()).await?;
        all.extend(items);
        match next {
            Some(token) => options.page_token = Some(token),
            None => return Ok(all),
        }
    }
}

impl Client {
    /// A client of the endpoint at `base` (e.g. `http://127.0.0.1:8080`), without a token.
    pub fn new(base: &str) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidEndpoint(base));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("stratus-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Transport {
                url: base.clone(),
                source,
            })?;
        Ok(Self {
            base,
            token: None,
            http,
        })
    }

    /// This client with `token` as its bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// The endpoint's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Exchanges an API key for an access token (`POST /v1/regions/global/auth/token`).
    /// The client's own token is neither needed nor changed.
    pub async fn exchange_api_key(&self, api_key: &str) -> Result<TokenResponse> {
        let body = TokenRequest {
            grant_type: "api_key".into(),
            api_key: Some(api_key.trim().to_owned()),
            client_id: None,
            client_secret: None,
        };
        self.exchange_for_token(&body).await
    }

    /// Exchanges a service account's client id and secret for an access token (grant
    /// `client_credentials`). The client's own token is neither needed nor changed.
    pub async fn exchange_client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<TokenResponse> {
        let body = TokenRequest {
            grant_type: "client_credentials".into(),
            api_key: None,
            client_id: Some(client_id.trim().to_owned()),
            client_secret: Some(client_secret.trim().to_owned()),
        };
        self.exchange_for_token(&body).await
    }

    async fn exchange_for_token(&self, body: &TokenRequest) -> Result<TokenResponse> {
        let request = self
            .http
            .post(format!("{}/v1/regions/global/auth/token", self.base))
            .json(body);
        self.send(request).await
    }

    /// The instances of `project` in `region`.
    pub fn instances<'a>(&'a self, region: &str, project: &str) -> Instances<'a> {
        Instances::new(self, region, project)
    }

    /// The networks, subnets and addresses of `project` in `region`.
    pub fn networks<'a>(&'a self, region: &str, project: &str) -> Networks<'a> {
        Networks::new(self, region, project)
    }

    /// The bare-metal servers of `project` in `region` (operators).
    pub fn servers<'a>(&'a self, region: &str, project: &str) -> Servers<'a> {
        Servers::new(self, region, project)
    }

    /// The catalog of `region`: zones, instance types, images.
    pub fn catalog<'a>(&'a self, region: &str) -> Catalog<'a> {
        Catalog::new(self, region)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and decodes a JSON answer, or the contract's error body.
    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        self.send_versioned(request).await.map(|v| v.value)
    }

    /// Like [`Client::send`], keeping the answer's `ETag`.
    async fn send_versioned<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<Versioned<T>> {
        decode(self.exchange(request).await?)
    }

    /// Like [`Client::send_versioned`] for a conditional read: `None` on 304 Not Modified.
    async fn send_unless_unchanged<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<Option<Versioned<T>>> {
        let answer = self.exchange(request).await?;
        if answer.status == 304 {
            return Ok(None);
        }
        decode(answer).map(Some)
    }

    /// Sends `request` whose success answer has no body (204).
    async fn send_empty(&self, request: RequestBuilder) -> Result<()> {
        self.exchange(request).await.map(|_| ())
    }

    async fn exchange(&self, request: RequestBuilder) -> Result<Answer> {
        let (url, response) = self.open(request).await?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|source| Error::Transport {
                url: url.clone(),
                source,
            })?
            .to_vec();
        Ok(Answer {
            url,
            status,
            etag,
            body: bytes,
        })
    }

    /// Sends `request` and answers its URL and the response, whose body is still to be read,
    /// when its status is a success; else the contract's error body as the error.
    async fn open(&self, request: RequestBuilder) -> Result<(String, reqwest::Response)> {
        let request = request.build().map_err(|source| Error::Transport {
            url: self.base.clone(),
            source,
        })?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|source| Error::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status < 400 {
            return Ok((url, response));
        }
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(Error::Api(ApiError {
                status,
                body,
                request_id,
            })),
            Err(_) => Err(Error::Unexpected {
                url,
                status,
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            }),
        }
    }
}

/// Decodes a JSON answer, keeping its `ETag`.
fn decode<T: DeserializeOwned>(answer: Answer) -> Result<Versioned<T>> {
    let value = serde_json::from_slice(&answer.body).map_err(|e| Error::Unexpected {
        url: answer.url,
        status: answer.status,
        message: format!("the body does not match the API's schema: {e}"),
    })?;
    Ok(Versioned {
        value,
        etag: answer.etag,
    })
}

/// Percent-encodes one path segment, so that an id typed by a user can never leave its place
/// in the path.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_keep_ids_and_escape_everything_else() {
        assert_eq!(super::segment("web-1"), "web-1");
        assert_eq!(super::segment("../x?y"), "..%2Fx%3Fy");
    }
}
