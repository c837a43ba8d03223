//! Access tokens from external OpenID Connect issuers.
//!
//! Besides its own tokens, a region accepts the tokens of identity providers named in its
//! configuration (`[[auth.oidc]]`). A token is routed by its `iss` claim: when it names one
//! of these issuers, that issuer's keys and rules decide; any other token is left to the
//! built-in issuer. Reading `iss` before the signature is checked is safe because it only
//! chooses which keys to try; nothing from an unverified token is trusted.
//!
//! **Keys.** Each issuer's signing keys are found the OIDC way: the discovery document at
//! `{issuer}/.well-known/openid-configuration` names the `jwks_uri`, whose JWK set holds the
//! public keys. Discovery happens lazily, at the first token of that issuer, so the region
//! starts even while the identity provider is down; a failed discovery is retried with a later
//! token. The discovery document must name the configured issuer exactly, so a misconfigured
//! URL cannot borrow another issuer's keys. Both are fetched over HTTPS with the system's
//! certificate authorities (an HTTPS issuer's never over plain HTTP, whatever its discovery
//! document or a redirect says); plain `http://` works (for a provider on the same host or in
//! tests) but is warned about at start, since whoever can alter the key set can sign any token.
//! The key set is cached per issuer and replaced as a whole on every fetch, so a key the
//! provider removed is gone from the cache at the next fetch. A fetch happens when a token
//! names a `kid` the cache does not hold (the provider has rotated its key) and when the cache
//! is older than its configured lifetime (`jwks-cache-s`), so a removed key stops working
//! within that lifetime even when no new key appears. Fetches of one issuer are serialized and
//! at most one starts per cooldown (`jwks-refresh-cooldown-ms`): a flood of tokens with made-up
//! `kid`s costs the provider one request per cooldown, not one per token. An expired cache is
//! never used; if the provider cannot be reached, its tokens are answered 503 (the token may
//! well be good) until a fetch succeeds.
//!
//! **Algorithm.** The algorithm comes from the key, never from the token: a JWK's `kty` and
//! `crv` (and its `alg` when given, which must agree with them) fix it — RS256/RS384/RS512
//! and PS256/PS384/PS512 for RSA keys, ES256 for P-256, ES384 for P-384, EdDSA for Ed25519.
//! The token's header must name exactly that algorithm. Symmetric (`oct`) and encryption
//! keys are never used, so `alg: none` and HS256 signed with a public key (the RS/HS
//! confusion) are refused.
//!
//! **Claims.** `exp`, `iss`, `aud` and `sub` are required; `exp` and `nbf` are checked with a
//! bounded clock skew (`clock-skew-s`, at most [`MAX_CLOCK_SKEW_S`]). The external claims are
//! then mapped onto the region's own claim set: the organization from the tenant claim (or a
//! fixed `tenant`), the roles from the roles claim (or fixed `roles`), scope `organization`,
//! principal type `user`, and the subject prefixed (`oidc:` by default) so it can never
//! collide with the subjects of the region's own credentials. Claim names may be dotted
//! paths into nested objects (`realm_access.roles`); a claim whose name itself contains dots
//! is found first.
//!
//! **Trust.** An identity provider speaks for its users, not for the region: a role claim is
//! taken only when the issuer's configuration allows it (`allowed-roles`, organization roles
//! only) or maps it (`role-map`); any other role refuses the token with a message naming it
//! (or is dropped, with `unknown-roles = "ignore"`). The region operator role `super_admin`
//! is never read from a claim; only subjects the configuration names in `operators` hold it.
//! The organization a token names must exist (checked with the token's liveness) and, when
//! `organizations` is set, be one of those.

use crate::app::authz::{ORGANIZATION_ROLES, SUPER_ADMIN};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stratus_core::{Error, Result};
use stratus_types::auth::Claims;

/// The largest clock skew an issuer may be configured with.
pub const MAX_CLOCK_SKEW_S: u64 = 300;

/// The longest a discovery or JWKS request to an identity provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest discovery document or JWK set read from an identity provider.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// One external OIDC issuer whose tokens the region accepts (an `[[auth.oidc]]` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OidcIssuerConfig {
    /// The issuer URL, exactly as its tokens' `iss` and its discovery document name it;
    /// discovery is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` its tokens must carry to be accepted here.
    pub audience: String,
    /// The claim naming the principal's organization (a dotted path reaches into objects).
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The claim listing the principal's roles: a list of strings or one space-separated
    /// string; absent means no roles.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// One organization for every principal of this issuer, instead of the tenant claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The same roles for every principal of this issuer, instead of the roles claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Put before the token's `sub` to form the principal's subject, keeping it apart from
    /// the region's own subjects and from other issuers'.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// How long fetched keys are used before they are fetched again, in seconds.
    #[serde(default = "default_jwks_cache_s")]
    pub jwks_cache_s: u64,
    /// The least time between two fetches of the keys, in milliseconds.
    #[serde(default = "default_jwks_refresh_cooldown_ms")]
    pub jwks_refresh_cooldown_ms: u64,
    /// Tolerated clock difference for `exp` and `nbf`, in seconds (at most 300).
    #[serde(default = "default_clock_skew_s")]
    pub clock_skew_s: u64,
    /// The region's organization roles this issuer's roles claim may carry as they are
    /// (`owner`, `admin`, `member`, `viewer`; all of them by default). `super_admin` is never
    /// taken from a claim.
    #[serde(default = "default_allowed_roles")]
    pub allowed_roles: Vec<String>,
    /// Values of the roles claim mapped to the region's roles (`{ "cloud-admins" = "admin" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_map: BTreeMap<String, String>,
    /// What a role the claim carries that is neither allowed nor mapped does: `refuse` the
    /// token (the default) or `ignore` the role.
    #[serde(default = "default_unknown_roles")]
    pub unknown_roles: String,
    /// Subjects (the token's own `sub`) that are the region's operators (`super_admin`). The
    /// only way an external principal becomes one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<String>,
    /// The organizations this issuer may name; empty: any organization that exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
}

fn default_allowed_roles() -> Vec<String> {
    ORGANIZATION_ROLES.iter().map(|r| r.to_string()).collect()
}

fn default_unknown_roles() -> String {
    "refuse".into()
}

fn default_tenant_claim() -> String {
    "tenant_id".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_subject_prefix() -> String {
    "oidc:".into()
}

fn default_jwks_cache_s() -> u64 {
    300
}

fn default_jwks_refresh_cooldown_ms() -> u64 {
    5000
}

fn default_clock_skew_s() -> u64 {
    30
}

impl OidcIssuerConfig {
    /// An issuer with the default claim names, cache lifetime, cooldown and clock skew.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            tenant_claim: default_tenant_claim(),
            roles_claim: default_roles_claim(),
            tenant: None,
            roles: None,
            subject_prefix: default_subject_prefix(),
            jwks_cache_s: default_jwks_cache_s(),
            jwks_refresh_cooldown_ms: default_jwks_refresh_cooldown_ms(),
            clock_skew_s: default_clock_skew_s(),
            allowed_roles: default_allowed_roles(),
            role_map: BTreeMap::new(),
            unknown_roles: default_unknown_roles(),
            operators: Vec::new(),
            organizations: Vec::new(),
        }
    }
}

/// The configured external issuers, each with its cached keys.
pub struct ExternalIssuers {
    issuers: Vec<ExternalIssuer>,
}

impl ExternalIssuers {
    /// Checks the configuration; `builtin_issuer` is the region's own `iss`, which no
    /// external issuer may claim. Nothing is fetched yet.
    pub fn new(configs: &[OidcIssuerConfig], builtin_issuer: &str) -> Result<Self> {
        if configs.is_empty() {
            return Ok(Self {
                issuers: Vec::new(),
            });
        }
        let mut issuers_seen = HashSet::new();
        let mut prefixes_seen = HashSet::new();
        for config in configs {
            let bad = |why: String| {
                Error::invalid("auth.oidc", format!("issuer {:?}: {why}", config.issuer))
            };
            if !(config.issuer.starts_with("https://") || config.issuer.starts_with("http://")) {
                return Err(bad("the issuer must be an http(s) URL".into()));
            }
            if config.issuer == builtin_issuer {
                return Err(bad("this is the region's own issuer ([auth] issuer)".into()));
            }
            if config.issuer.starts_with("http://") {
                tracing::warn!(issuer = %config.issuer, "an OIDC issuer over plain HTTP: its keys can be altered on the way");
            }
            if !issuers_seen.insert(config.issuer.as_str()) {
                return Err(bad("configured twice".into()));
            }
            if config.audience.is_empty() {
                return Err(bad("audience must not be empty".into()));
            }
            if config.subject_prefix.is_empty() {
                return Err(bad("subject-prefix must not be empty".into()));
            }
            if !prefixes_seen.insert(config.subject_prefix.as_str()) {
                return Err(bad(format!(
                    "subject-prefix {:?} is used by another issuer",
                    config.subject_prefix
                )));
            }
            if config.jwks_cache_s.saturating_mul(1000) < config.jwks_refresh_cooldown_ms.max(1) {
                return Err(bad(
                    "jwks-cache-s must be at least 1 and cover jwks-refresh-cooldown-ms".into(),
                ));
            }
            let not_a_role = config
                .allowed_roles
                .iter()
                .chain(config.role_map.values())
                .chain(config.roles.iter().flatten())
                .find(|r| !ORGANIZATION_ROLES.contains(&r.as_str()));
            if let Some(role) = not_a_role {
                return Err(bad(format!(
                    "{role:?} is not an organization role ({}); operators are named in `operators`",
                    ORGANIZATION_ROLES.join(", ")
                )));
            }
            if !matches!(config.unknown_roles.as_str(), "refuse" | "ignore") {
                return Err(bad(format!(
                    "unknown-roles is {:?}; use refuse or ignore",
                    config.unknown_roles
                )));
            }
            if config.clock_skew_s > MAX_CLOCK_SKEW_S {
                return Err(bad(format!(
                    "clock-skew-s is {}, at most {MAX_CLOCK_SKEW_S} is allowed",
                    config.clock_skew_s
                )));
            }
        }
        let issuers = configs
            .iter()
            .map(|config| ExternalIssuer::new(config.clone()))
            .collect::<Result<_>>()?;
        Ok(Self { issuers })
    }

    /// Verifies `token` when its `iss` names one of these issuers; `None` when it does not
    /// (the token is then the built-in issuer's to judge).
    pub async fn verify(&self, token: &str) -> Option<Result<Claims>> {
        if self.issuers.is_empty() {
            return None;
        }
        let claimed: UnverifiedIssuer = token_segment(token, 1)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == claimed.iss)?;
        Some(issuer.verify(token).await)
    }
}

/// The `iss` a token claims, read before its signature is checked (only to pick its keys).
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: String,
}

/// The JOSE header fields this module reads, kept as text so `none` and any other algorithm
/// can be named in the answer.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The base64url JSON segment `index` of a compact JWT.
fn token_segment<T: DeserializeOwned>(token: &str, index: usize) -> Option<T> {
    let segment = token.split('.').nth(index)?;
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A public key of an issuer with the one algorithm it verifies.
struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// The keys of one fetch of an issuer's JWK set.
struct KeySet {
    keys: Vec<VerificationKey>,
    /// When they were fetched; `None` before the first fetch.
    fetched_at: Option<Instant>,
}

impl KeySet {
    /// The key for a token's `kid` while the set is fresh; a token without `kid` is
    /// matched only when the issuer publishes a single key.
    fn find(&self, kid: Option<&str>, lifetime: Duration) -> Option<&VerificationKey> {
        let fresh = self.fetched_at.is_some_and(|at| at.elapsed() < lifetime);
        if !fresh {
            return None;
        }
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// What the serialized fetches of one issuer remember between them.
#[derive(Default)]
struct FetchState {
    /// From the discovery document; found again after a failed JWKS fetch.
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, repeated to callers until the cooldown allows another.
    last_error: Option<String>,
}

/// One configured issuer with its cached keys.
struct ExternalIssuer {
    config: OidcIssuerConfig,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl ExternalIssuer {
    /// An issuer with an empty cache. An HTTPS issuer's documents are fetched over HTTPS
    /// only, so neither a redirect nor its discovery document can downgrade the key fetch.
    fn new(config: OidcIssuerConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .https_only(config.issuer.starts_with("https://"))
            .build()
            .map_err(|e| Error::internal(format!("building the OIDC HTTP client: {e}")))?;
        Ok(Self {
            config,
            http,
            keys: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                fetched_at: None,
            })),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    fn unauthenticated(&self, why: impl std::fmt::Display) -> Error {
        Error::Unauthenticated(format!(
            "invalid bearer token from issuer {}: {why}",
            self.config.issuer
        ))
    }

    fn cache_lifetime(&self) -> Duration {
        Duration::from_secs(self.config.jwks_cache_s)
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks signature, algorithm, issuer, audience and lifetime, then maps the claims.
    async fn verify(&self, token: &str) -> Result<Claims> {
        let header: RawHeader =
            token_segment(token, 0).ok_or_else(|| self.unauthenticated("malformed header"))?;
        let keys = self.keys_with(header.kid.as_deref()).await?;
        let key = keys
            .find(header.kid.as_deref(), self.cache_lifetime())
            .ok_or_else(|| match &header.kid {
                Some(_) => self.unauthenticated("signed by a key the issuer does not publish"),
                None => self.unauthenticated("the header names no key (kid)"),
            })?;
        let expected = format!("{:?}", key.algorithm);
        if header.alg != expected {
            return Err(self.unauthenticated(format!(
                "signed with algorithm {:?}, but the issuer's key is for {expected}",
                header.alg
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.config.clock_skew_s;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                self.unauthenticated(match e.kind() {
                    ErrorKind::ExpiredSignature => "expired".to_owned(),
                    ErrorKind::ImmatureSignature => "not valid yet (nbf)".to_owned(),
                    ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
                    ErrorKind::InvalidAudience => format!(
                        "wrong audience; this region accepts {:?}",
                        self.config.audience
                    ),
                    ErrorKind::InvalidSignature => "bad signature".to_owned(),
                    ErrorKind::MissingRequiredClaim(claim) => format!("no {claim} claim"),
                    _ => "not valid".to_owned(),
                })
            })?
            .claims;
        self.map_claims(&claims)
    }

    /// The key set to look `kid` up in: the cached one while it is fresh and holds the key,
    /// else the result of a fetch (or of the last fetch, during the cooldown).
    async fn keys_with(&self, kid: Option<&str>) -> Result<Arc<KeySet>> {
        let cached = self.current_keys();
        if cached.find(kid, self.cache_lifetime()).is_some() {
            return Ok(cached);
        }
        let mut state = self.fetch.lock().await;
        let cached = self.current_keys();
        if cached.find(kid, self.cache_lifetime()).is_some() {
            // Another request fetched the key while this one waited.
            return Ok(cached);
        }
        let cooldown = Duration::from_millis(self.config.jwks_refresh_cooldown_ms);
        if state.last_attempt.is_some_and(|at| at.elapsed() < cooldown) {
            return match &state.last_error {
                Some(error) => Err(self.unavailable(error)),
                None => Ok(self.current_keys()),
            };
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(&mut state).await {
            Ok(keys) => {
                state.last_error = None;
                let keys = Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                });
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys.clone();
                Ok(keys)
            }
            Err(error) => {
                tracing::warn!(issuer = %self.config.issuer, %error, "fetching OIDC signing keys failed");
                state.jwks_uri = None;
                let answer = self.unavailable(&error);
                state.last_error = Some(error);
                Err(answer)
            }
        }
    }

    fn unavailable(&self, error: &str) -> Error {
        Error::Unavailable(format!(
            "the signing keys of issuer {} cannot be fetched right now ({error}); try again later",
            self.config.issuer
        ))
    }

    /// Discovers the JWKS URI when not yet known, then fetches and parses the key set.
    async fn fetch_keys(
        &self,
        state: &mut FetchState,
    ) -> std::result::Result<Vec<VerificationKey>, String> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set = self.get_json(&jwks_uri).await?;
        let keys: Vec<VerificationKey> = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{jwks_uri} is not a JWK set"))?
            .iter()
            .filter_map(verification_key)
            .collect();
        if keys.is_empty() {
            return Err(format!("{jwks_uri} holds no usable signing key"));
        }
        Ok(keys)
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name this issuer.
    async fn discover(&self) -> std::result::Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let document = self.get_json(&url).await?;
        if document.get("issuer").and_then(Value::as_str) != Some(&self.config.issuer) {
            return Err(format!("{url} names another issuer"));
        }
        document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{url} has no jwks_uri"))
    }

    async fn get_json(&self, url: &str) -> std::result::Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", with_causes(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {}", with_causes(&e)))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("GET {url}: the document is too large"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    /// The region's claims for a verified external token.
    fn map_claims(&self, claims: &Map<String, Value>) -> Result<Claims> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.unauthenticated("sub must be a non-empty string"))?;
        let tenant = match &self.config.tenant {
            Some(tenant) => tenant.clone(),
            None => claim(claims, &self.config.tenant_claim)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    self.unauthenticated(format!(
                        "no {} claim naming the organization",
                        self.config.tenant_claim
                    ))
                })?
                .to_owned(),
        };
        if !self.config.organizations.is_empty() && !self.config.organizations.contains(&tenant) {
            return Err(
                self.unauthenticated(format!("this issuer may not name organization {tenant:?}"))
            );
        }
        let claimed = match &self.config.roles {
            Some(roles) => roles.clone(),
            None => roles_of(claim(claims, &self.config.roles_claim)).ok_or_else(|| {
                self.unauthenticated(format!(
                    "the {} claim must be a list of strings",
                    self.config.roles_claim
                ))
            })?,
        };
        let mut roles = self.region_roles(&claimed)?;
        if self.config.operators.iter().any(|o| o == sub) {
            roles.push(SUPER_ADMIN.to_owned());
        }
        let number = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
                .unwrap_or(0)
        };
        Ok(Claims {
            sub: format!("{}{sub}", self.config.subject_prefix),
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            exp: number("exp"),
            iat: number("iat"),
            jti: claims
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tenant_id: tenant.clone(),
            scope: "organization".into(),
            scope_id: tenant,
            roles,
            principal_type: "user".into(),
            credential_id: None,
        })
    }
}

impl ExternalIssuer {
    /// The region's roles for the roles a token claims: allowed ones as they are, mapped
    /// ones translated, anything else refused (or dropped with `unknown-roles = "ignore"`).
    /// No claim reaches `super_admin`: operators are named in the configuration.
    fn region_roles(&self, claimed: &[String]) -> Result<Vec<String>> {
        let mut roles: Vec<String> = Vec::new();
        for role in claimed {
            let granted = match self.config.role_map.get(role) {
                Some(mapped) => Some(mapped),
                None => self.config.allowed_roles.iter().find(|r| *r == role),
            };
            match granted {
                Some(granted) => {
                    if !roles.contains(granted) {
                        roles.push(granted.clone());
                    }
                }
                None if self.config.unknown_roles == "ignore" => {}
                None => {
                    return Err(self.unauthenticated(format!(
                        "role {role:?} is not one this region accepts from this issuer (allowed: {}{}); \
                         the issuer's configuration maps claims to roles",
                        self.config.allowed_roles.join(", "),
                        if self.config.role_map.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; mapped: {}",
                                self.config.role_map.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    )));
                }
            }
        }
        Ok(roles)
    }
}

/// An error with its chain of causes, the way an operator needs to read it.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

/// The claim `name`: a top-level claim of that exact name, else a dotted path into objects.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.get(part))
    })
}

/// Roles from a list of strings or a space-separated string; no claim means no roles.
fn roles_of(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => Some(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

/// A verification key from one JWK, or `None` for keys that must not or cannot verify
/// tokens here (encryption keys, symmetric keys, unknown types, inconsistent `alg`).
fn verification_key(jwk: &Value) -> Option<VerificationKey> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = signing_algorithm(&jwk)?;
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        decoding: DecodingKey::from_jwk(&jwk).ok()?,
    })
}

/// The one algorithm a JWK verifies: fixed by its type and curve, narrowed by its `alg`
/// when that agrees with them. Symmetric keys get none.
fn signing_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return Some(by_type);
    };
    let declared = Algorithm::try_from(declared).ok()?;
    let agrees = match by_type {
        // Within the RSA family, PKCS#1 v1.5 and PSS over each hash are all sound.
        Algorithm::RS256 => declared.family() == by_type.family(),
        _ => declared == by_type,
    };
    agrees.then_some(declared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn algorithm_of(jwk: Value) -> Option<Algorithm> {
        verification_key(&jwk).map(|k| k.algorithm)
    }

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn the_algorithm_comes_from_the_key_type_and_curve() {
        let rsa = json!({"kty": "RSA", "kid": "r", "n": RSA_N, "e": "AQAB"});
        assert_eq!(algorithm_of(rsa.clone()), Some(Algorithm::RS256));
        let mut ps = rsa.clone();
        ps["alg"] = json!("PS512");
        assert_eq!(algorithm_of(ps), Some(Algorithm::PS512));
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "e",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(algorithm_of(ed), Some(Algorithm::EdDSA));
        let p256 = json!({"kty": "EC", "crv": "P-256", "kid": "p",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        assert_eq!(algorithm_of(p256), Some(Algorithm::ES256));
    }

    #[test]
    fn keys_that_must_not_verify_are_dropped() {
        let rsa = json!({"kty": "RSA", "kid": "r", "n": RSA_N, "e": "AQAB"});
        let mut hs = rsa.clone();
        hs["alg"] = json!("HS256");
        assert_eq!(algorithm_of(hs), None, "an RSA key declared for HS256");
        let mut es = rsa.clone();
        es["alg"] = json!("ES256");
        assert_eq!(algorithm_of(es), None, "an RSA key declared for ES256");
        let mut enc = rsa;
        enc["use"] = json!("enc");
        assert_eq!(algorithm_of(enc), None, "an encryption key");
        let oct = json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0", "alg": "HS256"});
        assert_eq!(algorithm_of(oct), None, "a symmetric key");
        let unknown = json!({"kty": "XYZ", "kid": "u"});
        assert_eq!(algorithm_of(unknown), None);
    }

    #[test]
    fn claims_are_found_by_name_then_by_dotted_path() {
        let claims = json!({
            "https://example.com/roles": ["a"],
            "realm_access": {"roles": ["owner", "member"]},
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(
            claim(claims, "https://example.com/roles"),
            Some(&json!(["a"]))
        );
        assert_eq!(
            claim(claims, "realm_access.roles"),
            Some(&json!(["owner", "member"]))
        );
        assert_eq!(claim(claims, "realm_access.groups"), None);
    }

    #[test]
    fn roles_are_a_list_or_a_space_separated_string() {
        assert_eq!(roles_of(None), Some(vec![]));
        assert_eq!(
            roles_of(Some(&json!("owner admin"))),
            Some(vec!["owner".into(), "admin".into()])
        );
        assert_eq!(
            roles_of(Some(&json!(["owner"]))),
            Some(vec!["owner".into()])
        );
        assert_eq!(roles_of(Some(&json!([1]))), None);
        assert_eq!(roles_of(Some(&json!({"a": 1}))), None);
    }

    #[test]
    fn the_configuration_is_checked() {
        let ok = OidcIssuerConfig::new("http://idp.test", "stratus");
        assert!(ExternalIssuers::new(std::slice::from_ref(&ok), "stratus").is_ok());
        let cases = [
            (OidcIssuerConfig::new("idp.test", "stratus"), "http(s) URL"),
            (OidcIssuerConfig::new("http://idp.test", ""), "audience"),
            (
                OidcIssuerConfig {
                    clock_skew_s: 3600,
                    ..ok.clone()
                },
                "at most 300",
            ),
            (
                OidcIssuerConfig {
                    jwks_cache_s: 0,
                    ..ok.clone()
                },
                "jwks-cache-s",
            ),
            (
                OidcIssuerConfig {
                    jwks_cache_s: 4,
                    ..ok.clone()
                },
                "cover jwks-refresh-cooldown-ms",
            ),
        ];
        for (config, expected) in cases {
            let error = ExternalIssuers::new(&[config], "stratus").err().unwrap();
            assert!(error.to_string().contains(expected), "{error}");
        }
        let twice = ExternalIssuers::new(&[ok.clone(), ok.clone()], "stratus");
        assert!(twice.err().unwrap().to_string().contains("twice"));
        let other = OidcIssuerConfig::new("http://other.test", "stratus");
        let same_prefix = ExternalIssuers::new(&[ok.clone(), other], "stratus");
        assert!(
            same_prefix
                .err()
                .unwrap()
                .to_string()
                .contains("subject-prefix")
        );
        let builtin = ExternalIssuers::new(&[ok], "http://idp.test");
        assert!(builtin.err().unwrap().to_string().contains("own issuer"));
    }

    #[tokio::test]
    async fn https_issuers_are_reached_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n{}").await;
            }
        });
        let config = OidcIssuerConfig::new(format!("https://{addr}"), "stratus");
        let issuers = ExternalIssuers::new(&[config], "stratus").unwrap();
        let error = issuers.issuers[0]
            .get_json(&format!("https://{addr}/x"))
            .await
            .unwrap_err();
        // rustls's answer to a server that does not speak TLS: the handshake was tried.
        assert!(error.contains("corrupt message"), "{error}");
    }

    #[tokio::test]
    async fn an_https_issuer_never_fetches_over_plain_http() {
        let config = OidcIssuerConfig::new("https://idp.test", "stratus");
        let issuers = ExternalIssuers::new(&[config], "stratus").unwrap();
        let error = issuers.issuers[0]
            .get_json("http://127.0.0.1:1/jwks")
            .await
            .unwrap_err();
        assert!(error.contains("URL scheme is not allowed"), "{error}");
    }

    #[tokio::test]
    async fn tokens_of_other_issuers_are_left_to_the_builtin_one() {
        let issuers =
            ExternalIssuers::new(&[OidcIssuerConfig::new("http://idp.test", "s")], "stratus")
                .unwrap();
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"stratus","sub":"x"}"#);
        assert!(
            issuers
                .verify(&format!("e30.{payload}.sig"))
                .await
                .is_none()
        );
        assert!(issuers.verify("not a token").await.is_none());
    }
}
