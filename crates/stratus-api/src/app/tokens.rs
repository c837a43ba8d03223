//! The token endpoint and API keys.

use super::{App, Principal, authz::SUPER_ADMIN, now};
use rand::Rng;
use sha2::{Digest, Sha256};
use stratus_core::{Error, Result, ids};
use stratus_store::ApiKeyRecord;
use stratus_types::auth::{Claims, TokenRequest, TokenResponse};
use uuid::Uuid;

/// Prefix of Stratus API key secrets, so leaked keys are easy to recognise and scan for.
pub const API_KEY_PREFIX: &str = "stk_";
/// Prefix of the host credential agents present.
pub const HOST_CREDENTIAL_PREFIX: &str = "sth_";

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{API_KEY_PREFIX}{body}")
}

impl App {
    /// `POST /v1/regions/global/auth/token`.
    pub async fn mint_token(&self, request: TokenRequest) -> Result<TokenResponse> {
        match request.grant_type.as_str() {
            "api_key" => {}
            "client_credentials" => {
                return self
                    .mint_for_client(request.client_id, request.client_secret)
                    .await;
            }
            other => {
                return Err(Error::invalid(
                    "grant_type",
                    format!(
                        "unsupported grant type {other:?}; this region accepts api_key and \
                         client_credentials"
                    ),
                ));
            }
        }
        let secret = request.api_key.ok_or_else(|| {
            Error::invalid("api_key", "api_key is required for grant_type api_key")
        })?;
        let hash = hash_secret(secret.trim());
        let unknown = || Error::Unauthenticated("unknown or revoked API key".into());
        let key = self
            .store
            .find_api_key_by_hash(&hash)
            .await?
            .ok_or_else(unknown)?;
        let current = key.secret_hash == hash;
        let in_grace = key.previous_secret_hash.as_deref() == Some(hash.as_str())
            && key
                .previous_secret_expires_at
                .is_some_and(|until| now() < until);
        if !current && !in_grace {
            return Err(Error::Unauthenticated(
                "this API key secret was rotated and its grace period is over".into(),
            ));
        }
        if key.status != "active" {
            return Err(Error::Unauthenticated(format!(
                "API key {} is {}",
                key.id, key.status
            )));
        }
        self.store.touch_api_key(key.uid, now()).await?;
        // The key is a principal of its own: never its maker, whose other keys and tokens it
        // must not reach.
        let token = self.issuer.mint(Claims {
            sub: key.id.clone(),
            iss: String::new(),
            aud: String::new(),
            exp: 0,
            iat: 0,
            jti: String::new(),
            tenant_id: key.organization_id.clone(),
            scope: key.scope.clone(),
            scope_id: key.scope_id.clone(),
            roles: key.roles.clone(),
            principal_type: "api_key".into(),
            credential_id: Some(key.id.clone()),
        })?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: self.issuer.ttl().as_secs(),
        })
    }

    /// Makes the credential host agents present, unless one was made before; `persist` stores
    /// the secret for the operator first. Returns whether one was made.
    pub async fn bootstrap_host_credential(
        &self,
        persist: impl FnOnce(&str) -> std::io::Result<()>,
    ) -> Result<bool> {
        const KEY: &str = "host-credential-sha256";
        if self.store.get_setting(KEY).await?.is_some() {
            return Ok(false);
        }
        let secret = new_secret().replacen(API_KEY_PREFIX, HOST_CREDENTIAL_PREFIX, 1);
        persist(&secret)
            .map_err(|e| Error::internal(format!("saving the host credential: {e}")))?;
        self.store
            .setting_or_init(KEY, &hash_secret(&secret))
            .await?;
        Ok(true)
    }

    /// Accepts the region's host credential, refuses anything else.
    pub async fn check_host_credential(&self, secret: &str) -> Result<()> {
        let stored = match self.host_credential.get() {
            Some(hash) => Some(hash.clone()),
            None => {
                let stored = self.store.get_setting("host-credential-sha256").await?;
                if let Some(hash) = &stored {
                    let _ = self.host_credential.set(hash.clone());
                }
                stored
            }
        };
        let given = hash_secret(secret);
        // Comparing digests, not secrets: timing reveals nothing about the secret.
        match stored {
            Some(hash) if hash == given => Ok(()),
            _ => Err(Error::Unauthenticated(
                "not the region's host credential".into(),
            )),
        }
    }

    /// Makes the region's first administrator key, unless one was made before. `persist`
    /// stores the secret for the operator before the key becomes valid. Returns whether a key
    /// was made.
    pub async fn bootstrap_admin_key(
        &self,
        organization: &str,
        persist: impl FnOnce(&str) -> std::io::Result<()>,
    ) -> Result<bool> {
        const MARKER: &str = "bootstrap-admin-key";
        if self.store.get_setting(MARKER).await?.is_some() {
            return Ok(false);
        }
        // The secret is saved before the key exists and the marker set after, so a crash in
        // between leads to a fresh key at the next start, never to a key nobody holds.
        let secret = new_secret();
        persist(&secret).map_err(|e| Error::internal(format!("saving the admin key: {e}")))?;
        let id = ids::generate("apikey-admin").to_string();
        self.store
            .create_api_key(&ApiKeyRecord {
                uid: Uuid::new_v4(),
                id: id.clone(),
                secret_hash: hash_secret(&secret),
                organization_id: organization.to_owned(),
                scope: "organization".into(),
                scope_id: organization.to_owned(),
                roles: vec![SUPER_ADMIN.into()],
                created_by: "bootstrap".into(),
                display_name: "bootstrap administrator".into(),
                created_at: now(),
                last_used_at: None,
                status: "active".into(),
                previous_secret_hash: None,
                previous_secret_expires_at: None,
                last_rotated_at: None,
            })
            .await?;
        self.store.setting_or_init(MARKER, &id).await?;
        Ok(true)
    }
}

/// How long a checked signature is trusted without checking it again (a rotated-away key or
/// issuer stops being accepted at the latest this much later).
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl App {
    /// Checks `token` with the external OIDC issuer its `iss` names, else with the region's
    /// own issuer; revocation is not checked here.
    pub async fn verify_token(&self, token: &str) -> Result<Claims> {
        match self.external_issuers.verify(token).await {
            Some(verified) => verified,
            None => self.issuer.verify(token),
        }
    }

    /// The principal a bearer token stands for: verified (by its issuer) and live (not
    /// revoked, its credential still active).
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let verified = async {
            let claims = match self.recently_verified(token) {
                Some(claims) => claims,
                None => {
                    let claims = self.verify_token(token).await?;
                    // An external issuer's keys follow its JWKS cache; only the region's own
                    // tokens are remembered.
                    if claims.iss == self.config.issuer {
                        self.remember_verified(token, &claims);
                    }
                    claims
                }
            };
            self.ensure_token_live(&claims).await?;
            Ok(claims)
        }
        .await;
        let outcome = match &verified {
            Ok(_) => "accepted",
            Err(Error::Unavailable(_)) => "unavailable",
            Err(_) => "refused",
        };
        metrics::counter!("stratus_token_verifications_total", "outcome" => outcome).increment(1);
        verified.map(Principal::from)
    }

    /// The claims of `token` when its signature was checked within [`VERIFIED_TTL`] and it has
    /// not expired since: a busy client's every request need not check the signature again.
    /// (Whether it was revoked is still asked each time, of its own cache.)
    fn recently_verified(&self, token: &str) -> Option<Claims> {
        let verified = self.verified_tokens.lock().ok()?;
        let (claims, checked) = verified.get(token)?;
        (checked.elapsed() < VERIFIED_TTL && claims.exp > chrono::Utc::now().timestamp())
            .then(|| claims.clone())
    }

    fn remember_verified(&self, token: &str, claims: &Claims) {
        if let Ok(mut verified) = self.verified_tokens.lock() {
            if verified.len() >= 10_000 {
                verified.clear();
            }
            verified.insert(
                token.to_owned(),
                (claims.clone(), std::time::Instant::now()),
            );
        }
    }

    /// The public keys of the region's own issuer, as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        self.issuer.jwks()
    }
}
