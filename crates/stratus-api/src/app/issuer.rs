//! The region's own token issuer.
//!
//! The region signs its own access tokens (EdDSA over Ed25519). The signing key is made at
//! first start and kept in the store, so tokens survive restarts and every replica signs
//! alike; its public half is published at `/.well-known/jwks.json`. Verification pins the
//! algorithm, the issuer and the audience, bounds clock skew, and refuses tokens `mint` would
//! not have made (no `jti`, a lifetime beyond the configured one). Tokens of configured
//! external OIDC issuers are verified by [`super::oidc`] instead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use stratus_core::{Error, Result};
use stratus_store::{SigningKeyRecord, Store};
use stratus_types::auth::Claims;

/// Tolerated clock difference between the token's issuer and this server.
const LEEWAY_SECONDS: u64 = 30;

struct VerificationKey {
    kid: String,
    public_key: Vec<u8>,
    decoding: DecodingKey,
}

/// Signs and verifies the region's access tokens.
pub struct Issuer {
    issuer: String,
    audience: String,
    ttl: Duration,
    signing_kid: String,
    encoding: EncodingKey,
    keys: Vec<VerificationKey>,
}

impl Issuer {
    /// Loads the signing keys from the store, creating the first one on a new region.
    pub async fn load(
        store: &dyn Store,
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Result<Self> {
        let seed: [u8; 32] = rand::random();
        let signing = SigningKey::from_bytes(&seed);
        let private_der = signing
            .to_pkcs8_der()
            .map_err(|e| Error::internal(format!("encoding a signing key: {e}")))?;
        let public_key = signing.verifying_key().to_bytes().to_vec();
        let candidate = SigningKeyRecord {
            kid: hex::encode(&Sha256::digest(&public_key)[..8]),
            algorithm: "EdDSA".into(),
            private_key: private_der.as_bytes().to_vec(),
            public_key,
            created_at: Utc::now(),
        };
        let records = store.init_signing_key(&candidate).await?;
        let newest = records
            .last()
            .ok_or_else(|| Error::internal("no signing key in the store"))?;
        let keys = records
            .iter()
            .map(|r| VerificationKey {
                kid: r.kid.clone(),
                public_key: r.public_key.clone(),
                decoding: DecodingKey::from_ed_der(&r.public_key),
            })
            .collect();
        Ok(Self {
            issuer,
            audience,
            ttl,
            signing_kid: newest.kid.clone(),
            encoding: EncodingKey::from_ed_der(&newest.private_key),
            keys,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for the given principal fields; fills the standard claims.
    pub fn mint(&self, mut claims: Claims) -> Result<String> {
        let now = Utc::now().timestamp();
        claims.iss = self.issuer.clone();
        claims.aud = self.audience.clone();
        claims.iat = now;
        claims.exp = now + self.ttl.as_secs() as i64;
        claims.jti = uuid::Uuid::new_v4().to_string();
        self.sign(&claims)
    }

    /// Signs `claims` exactly as given (no standard claims filled in): for tools and tests
    /// that need a token with particular times or audience.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing a token: {e}")))
    }

    /// `iss` of this region's tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `aud` of this region's tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Checks signature, algorithm, issuer, audience and lifetime of `token`.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let unauthenticated =
            |why: &str| Error::Unauthenticated(format!("invalid bearer token: {why}"));
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(unauthenticated("unexpected signing algorithm"));
        }
        let key = self
            .keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or_else(|| unauthenticated("signed by an unknown key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => unauthenticated("expired"),
                    ErrorKind::InvalidIssuer => unauthenticated("wrong issuer"),
                    ErrorKind::InvalidAudience => unauthenticated("wrong audience"),
                    ErrorKind::InvalidSignature => unauthenticated("bad signature"),
                    _ => unauthenticated("not valid"),
                }
            })?;
        // Every token this region signs has an id (so it can be revoked) and lives at most
        // the configured lifetime; a token claiming otherwise was not made by `mint`.
        if claims.jti.is_empty() {
            return Err(unauthenticated("it has no jti"));
        }
        let leeway = LEEWAY_SECONDS as i64;
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if claims.iat > Utc::now().timestamp() + leeway
            || lifetime > self.ttl.as_secs() as i64 + leeway
        {
            return Err(unauthenticated(
                "its lifetime is longer than this region issues",
            ));
        }
        Ok(claims)
    }

    /// The public keys as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": URL_SAFE_NO_PAD.encode(&k.public_key),
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}
