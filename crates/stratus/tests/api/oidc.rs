//! External OIDC issuers: a local identity provider, with Ed25519 keys made in the test and
//! its discovery document and JWK set served over HTTP, against a region that trusts it.

use crate::support::*;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode as HttpStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratus::Config;
use stratus_api::app::oidc::OidcIssuerConfig;

const AUDIENCE: &str = "stratus-test";
const REALM: &str = "/realms/test";

/// A signing key of the test identity provider, made fresh by the test.
pub(crate) struct TestKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    /// The public key as published in the JWK set.
    jwk: Value,
    /// The raw public key and its SubjectPublicKeyInfo DER, as an attacker could have them.
    public: Vec<u8>,
    public_der: Vec<u8>,
}

impl TestKey {
    /// An Ed25519 key (EdDSA).
    pub(crate) fn ed25519(kid: &str) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let private_der = signing.to_pkcs8_der().unwrap();
        let verifying = signing.verifying_key();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(private_der.as_bytes()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(verifying.to_bytes())}),
            public: verifying.to_bytes().to_vec(),
            public_der: verifying.to_public_key_der().unwrap().into_vec(),
        }
    }

    /// A P-256 key (ES256), published without `alg` as many providers do.
    fn p256(kid: &str) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()).unwrap();
        let public = secret.public_key();
        let point = public.to_encoded_point(false);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}),
            public: point.as_bytes().to_vec(),
            public_der: public.to_public_key_der().unwrap().into_vec(),
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as an attacker could download it.
    fn public_pem(&self) -> String {
        let body = STANDARD.encode(&self.public_der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// What the test identity provider publishes, and what it saw.
#[derive(Default)]
struct IdpState {
    issuer: String,
    keys: Mutex<Vec<Value>>,
    down: AtomicBool,
    /// The discovery document names another issuer than the one it is served for.
    names_another_issuer: AtomicBool,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

/// A local OIDC identity provider on 127.0.0.1: discovery and JWKS over HTTP.
pub(crate) struct TestIdp {
    issuer: String,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

impl TestIdp {
    pub(crate) async fn start(published: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}{REALM}", listener.local_addr().unwrap());
        let state = Arc::new(IdpState {
            issuer: issuer.clone(),
            ..IdpState::default()
        });
        let router = axum::Router::new()
            .route(
                &format!("{REALM}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route(&format!("{REALM}/protocol/certs"), get(jwks))
            .with_state(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let idp = Self {
            issuer,
            state,
            task,
        };
        idp.publish(published);
        idp
    }

    /// Replaces the published key set.
    fn publish(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The claims of a token for `tenant` with `roles`, valid for five minutes.
    pub(crate) fn claims(&self, tenant: &str, roles: &[&str]) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer, "aud": AUDIENCE, "sub": "alice", "iat": now,
            "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
            "tenant_id": tenant, "roles": roles})
    }

    /// The region's `[[auth.oidc]]` entry for this issuer.
    pub(crate) fn config(&self) -> OidcIssuerConfig {
        OidcIssuerConfig {
            jwks_refresh_cooldown_ms: 200,
            ..OidcIssuerConfig::new(&self.issuer, AUDIENCE)
        }
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpStatus::SERVICE_UNAVAILABLE.into_response();
    }
    let named = if state.names_another_issuer.load(Ordering::SeqCst) {
        format!("{}-elsewhere", state.issuer)
    } else {
        state.issuer.clone()
    };
    Json(json!({
        "issuer": named,
        "jwks_uri": format!("{}/protocol/certs", state.issuer),
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpStatus::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({"keys": *state.keys.lock().unwrap()})).into_response()
}

/// An identity provider publishing one key (`key-1`), a region trusting it, and a client of
/// that region with no token yet.
struct Setup {
    key: TestKey,
    idp: TestIdp,
    region: TestRegion,
    anonymous: Client,
}

/// Starts a [`Setup`]; `tune` adjusts the region's `[[auth.oidc]]` entry.
async fn setup(tune: impl FnOnce(&mut OidcIssuerConfig)) -> Setup {
    let key = TestKey::ed25519("key-1");
    let idp = TestIdp::start(&[&key]).await;
    let mut issuer = idp.config();
    tune(&mut issuer);
    let mut config: Config = fast_config();
    config.auth.oidc = vec![issuer];
    let region = TestRegion::with_config(config).await;
    let anonymous = Client::anonymous(&region.client.base);
    Setup {
        key,
        idp,
        region,
        anonymous,
    }
}

impl Setup {
    /// A client with a token of `key-1` for an owner of `tenant`.
    fn owner_of(&self, tenant: &str) -> Client {
        with_token(
            &self.anonymous,
            self.key.sign(&self.idp.claims(tenant, &["owner"])),
        )
    }
}

fn with_token(client: &Client, token: String) -> Client {
    let mut client = client.clone();
    client.token = Some(token);
    client
}

/// A compact JWT with any header, claims and raw signature bytes.
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// An HS256 token keyed with `secret` (e.g. the issuer's public key).
fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Asserts a 401 whose message says `why`.
async fn assert_refused(client: &Client, token: String, why: &str) {
    let reply = with_token(client, token).get(INSTANCES).await;
    reply.assert_error(401);
    assert!(reply.message().contains(why), "{why}: {:#}", reply.body);
}

#[tokio::test]
async fn an_oidc_token_is_accepted_and_key_rotation_is_followed() {
    let Setup {
        key: old,
        idp,
        region,
        anonymous,
    } = setup(|_| {}).await;
    assert_eq!(
        idp.state.discovery_fetches.load(Ordering::SeqCst),
        0,
        "nothing is fetched before the first token"
    );

    let user = with_token(&anonymous, old.sign(&idp.claims("default", &["owner"])));
    let list = user.get(INSTANCES).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    region.client.create_instance("web-1").await;
    let get = user.get(&format!("{INSTANCES}/web-1")).await;
    assert_eq!(get.status, StatusCode::OK, "{:#}", get.body);
    let created = user
        .post(INSTANCES, json!({"id": "web-2", "type": TYPE_SMALL}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    assert_eq!(idp.jwks_fetches(), 1, "the keys are cached");

    // The provider rotates: a new key, the old one removed.
    // The new key is of another kind too (P-256, ES256), as when a provider changes algorithm.
    let new = TestKey::p256("key-2");
    idp.publish(&[&new]);
    tokio::time::sleep(Duration::from_millis(250)).await; // past the refresh cooldown
    let renewed = with_token(&anonymous, new.sign(&idp.claims("default", &["owner"])));
    let list = renewed.get(INSTANCES).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "the unknown kid fetched the keys again"
    );
    let still_old = old.sign(&idp.claims("default", &["owner"]));
    assert_refused(&anonymous, still_old, "a key the issuer does not publish").await;
    assert_refused(&anonymous, user.token.unwrap(), "does not publish").await;
    region.stop().await;
}

#[tokio::test]
async fn a_removed_key_stops_working_when_the_cache_expires() {
    let s = setup(|issuer| issuer.jwks_cache_s = 1).await;
    let user = s.owner_of("default");
    assert_eq!(user.get(INSTANCES).await.status, StatusCode::OK);

    s.idp.publish(&[&TestKey::ed25519("key-2")]);
    let cached = user.get(INSTANCES).await;
    assert_eq!(cached.status, StatusCode::OK, "within the cache lifetime");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    user.get(INSTANCES).await.assert_error(401);
    assert_eq!(s.idp.jwks_fetches(), 2);
    s.region.stop().await;
}

#[tokio::test]
async fn forged_and_invalid_oidc_tokens_are_refused() {
    let Setup {
        key,
        idp,
        region,
        anonymous,
    } = setup(|_| {}).await;
    let good = idp.claims("default", &["owner"]);
    let ok = with_token(&anonymous, key.sign(&good)).get(INSTANCES).await;
    assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.body);

    let none = forge(
        &json!({"alg": "none", "typ": "JWT", "kid": "key-1"}),
        &good,
        b"",
    );
    assert_refused(&anonymous, none, "algorithm \"none\"").await;
    let pem = key.public_pem();
    for secret in [&key.public[..], &key.public_der, pem.as_bytes()] {
        let confused = hs256("key-1", &good, secret);
        assert_refused(&anonymous, confused, "algorithm \"HS256\"").await;
    }
    let impostor = TestKey::ed25519("key-1");
    assert_refused(&anonymous, impostor.sign(&good), "bad signature").await;

    let now = chrono::Utc::now().timestamp();
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        key.sign(&claims)
    };
    assert_refused(
        &anonymous,
        with("aud", json!("another-service")),
        "wrong audience",
    )
    .await;
    assert_refused(&anonymous, with("exp", json!(now - 120)), "expired").await;
    assert_refused(&anonymous, with("nbf", json!(now + 120)), "nbf").await;
    let without = |field: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(field);
        key.sign(&claims)
    };
    assert_refused(&anonymous, without("tenant_id"), "no tenant_id claim").await;
    assert_refused(&anonymous, without("exp"), "no exp claim").await;
    // Not one of the configured issuers: left to the built-in issuer, which refuses it.
    let elsewhere = with("iss", json!("http://127.0.0.1:1/realms/other"));
    with_token(&anonymous, elsewhere)
        .get(INSTANCES)
        .await
        .assert_error(401);
    // Within the clock skew (30 s) is still fine.
    let skewed = with_token(&anonymous, with("exp", json!(now - 10)));
    assert_eq!(skewed.get(INSTANCES).await.status, StatusCode::OK);
    // No kid: fine while the issuer publishes a single key.
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &good, &key.encoding);
    let no_kid = with_token(&anonymous, no_kid.unwrap()).get(INSTANCES).await;
    assert_eq!(no_kid.status, StatusCode::OK, "{:#}", no_kid.body);
    assert_eq!(idp.jwks_fetches(), 1);
    region.stop().await;
}

#[tokio::test]
async fn unknown_kids_refresh_the_keys_at_most_once_per_cooldown() {
    let Setup {
        key,
        idp,
        region,
        anonymous,
    } = setup(|issuer| issuer.jwks_refresh_cooldown_ms = 60_000).await;
    let good = idp.claims("default", &["owner"]);
    for n in 0..20 {
        let bogus = TestKey::ed25519(&format!("bogus-{n}"));
        assert_refused(&anonymous, bogus.sign(&good), "does not publish").await;
    }
    assert_eq!(idp.jwks_fetches(), 1, "one fetch for twenty unknown kids");
    let ok = with_token(&anonymous, key.sign(&good)).get(INSTANCES).await;
    assert_eq!(ok.status, StatusCode::OK);
    region.stop().await;
}

#[tokio::test]
async fn concurrent_first_tokens_fetch_the_keys_once() {
    let s = setup(|issuer| issuer.jwks_refresh_cooldown_ms = 0).await;
    let user = s.owner_of("default");
    let requests = (0..20).map(|_| {
        let user = user.clone();
        tokio::spawn(async move { user.get(INSTANCES).await.status })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.idp.jwks_fetches(), 1);
    s.region.stop().await;
}

#[tokio::test]
async fn the_region_starts_while_the_issuer_is_down_and_retries_later() {
    let s = setup(|_| {}).await;
    s.idp.state.down.store(true, Ordering::SeqCst);
    let user = s.owner_of("default");
    let down = user.get(INSTANCES).await;
    down.assert_error(503);
    assert!(
        down.message().contains("cannot be fetched"),
        "{:#}",
        down.body
    );

    s.idp.state.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let up = user.get(INSTANCES).await;
    assert_eq!(up.status, StatusCode::OK, "{:#}", up.body);
    assert_eq!(s.idp.state.discovery_fetches.load(Ordering::SeqCst), 2);
    s.region.stop().await;
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_not_trusted() {
    let s = setup(|_| {}).await;
    s.idp
        .state
        .names_another_issuer
        .store(true, Ordering::SeqCst);
    let refused = s.owner_of("default").get(INSTANCES).await;
    refused.assert_error(503);
    assert!(
        refused.message().contains("names another issuer"),
        "{:#}",
        refused.body
    );
    assert_eq!(s.idp.jwks_fetches(), 0, "its keys were never fetched");
    s.region.stop().await;
}

#[tokio::test]
async fn an_oidc_token_is_introspected_with_its_mapped_claims_and_can_be_revoked() {
    let s = setup(|_| {}).await;
    let user = s.owner_of("default");
    let token = user.token.clone().unwrap();
    let seen = user
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": token}),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:#}", seen.body);
    let claims = &seen.body;
    assert_eq!(claims["active"], true, "{claims:#}");
    assert_eq!(claims["sub"], "oidc:alice");
    assert_eq!(claims["iss"], s.idp.issuer.as_str());
    assert_eq!(claims["tenant_id"], "default");
    assert_eq!(claims["scope"], "organization");
    assert_eq!(claims["roles"], json!(["owner"]));
    assert_eq!(claims["principal_type"], "user");

    let revoked = user
        .post("/v1/regions/global/auth/revoke", json!({"token": token}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:#}", revoked.body);
    user.get(INSTANCES).await.assert_error(401);
    s.region.stop().await;
}

#[tokio::test]
async fn another_tenants_oidc_token_sees_404() {
    let s = setup(|_| {}).await;
    s.region.client.create_instance("web-1").await;
    let other = s
        .region
        .client
        .post("/v1/regions/global/organizations", json!({"id": "other"}))
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:#}", other.body);
    let outsider = s.owner_of("other");
    for path in [
        format!("{INSTANCES}/web-1"),
        format!("{INSTANCES}/x"),
        INSTANCES.to_owned(),
    ] {
        outsider.get(&path).await.assert_error(404);
    }
    let seen = s
        .owner_of("default")
        .get(&format!("{INSTANCES}/web-1"))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:#}", seen.body);
    s.region.stop().await;
}

/// The attack: an identity provider's token claims the region operator role (or any role it
/// likes) for an organization, existing or not. Only roles the issuer's configuration allows or
/// maps count; `super_admin` comes only from `operators`; the organization must exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tokens_get_only_the_roles_their_issuer_is_allowed_to_grant() {
    let s = setup(|issuer| {
        issuer.allowed_roles = vec!["viewer".into(), "member".into()];
        issuer.role_map = [("cloud-admins".to_owned(), "admin".to_owned())].into();
        issuer.operators = vec!["root-of-idp".into()];
    })
    .await;
    let admin = s.region.client.clone();
    admin
        .post("/v1/regions/global/organizations", json!({"id": "globex"}))
        .await;
    admin.create_instance("web-1").await;
    let token_for = |sub: &str, tenant: &str, roles: &[&str]| {
        let mut claims = s.idp.claims(tenant, roles);
        claims["sub"] = json!(sub);
        with_token(&s.anonymous, s.key.sign(&claims))
    };

    // Claiming the operator role: refused outright, naming the role; never a super_admin.
    let claimer = token_for("mallory", "globex", &["super_admin"]);
    for path in [
        format!("{INSTANCES}/web-1"),
        "/v1/regions/global/organizations".to_owned(),
        "/v1/regions/global/audit/events".to_owned(),
    ] {
        let reply = claimer.get(&path).await;
        reply.assert_error(401);
        assert!(
            reply.message().contains("super_admin"),
            "{}",
            reply.message()
        );
    }
    let minted = claimer
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"roles": ["super_admin"]}),
        )
        .await;
    minted.assert_error(401);
    // A role the issuer may not grant, even an ordinary one, is refused the same way.
    token_for("mallory", "globex", &["owner"])
        .get("/v1/regions/global/projects")
        .await
        .assert_error(401);
    // A token naming an organization that does not exist is refused.
    let nowhere = token_for("mallory", "no-such-org", &["viewer"])
        .get("/v1/regions/global/projects")
        .await;
    nowhere.assert_error(401);
    assert!(
        nowhere.message().contains("organization"),
        "{}",
        nowhere.message()
    );

    // Allowed and mapped roles work, and only in the token's own organization.
    let member = token_for("bob", "default", &["member"]);
    assert_eq!(member.get(INSTANCES).await.status, StatusCode::OK);
    let mapped = token_for("carol", "default", &["cloud-admins"]);
    let introspected = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": mapped.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(
        introspected.body["roles"],
        json!(["admin"]),
        "{:#}",
        introspected.body
    );
    let viewer_elsewhere = token_for("bob", "globex", &["viewer"]);
    viewer_elsewhere
        .get(&format!("{INSTANCES}/web-1"))
        .await
        .assert_error(404);

    // The configured operator is the one external super_admin.
    let operator = token_for("root-of-idp", "globex", &["viewer"]);
    let seen = operator.get(&format!("{INSTANCES}/web-1")).await;
    assert_eq!(seen.status, StatusCode::OK, "{:#}", seen.body);
    s.region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_roles_can_be_ignored_and_an_issuer_can_be_bound_to_organizations() {
    let s = setup(|issuer| {
        issuer.unknown_roles = "ignore".into();
        issuer.organizations = vec!["default".into()];
    })
    .await;
    let admin = s.region.client.clone();
    admin
        .post("/v1/regions/global/organizations", json!({"id": "globex"}))
        .await;
    let token_for = |tenant: &str, roles: &[&str]| {
        with_token(&s.anonymous, s.key.sign(&s.idp.claims(tenant, roles)))
    };
    // offline_access (as Keycloak adds) and super_admin are dropped; viewer stays.
    let viewer = token_for("default", &["offline_access", "super_admin", "viewer"]);
    assert_eq!(viewer.get(INSTANCES).await.status, StatusCode::OK);
    let introspected = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": viewer.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(
        introspected.body["roles"],
        json!(["viewer"]),
        "{:#}",
        introspected.body
    );
    viewer
        .post(INSTANCES, json!({"type": TYPE_SMALL}))
        .await
        .assert_error(403);
    // An existing organization the issuer is not bound to is refused.
    let elsewhere = token_for("globex", &["owner"])
        .get("/v1/regions/global/projects")
        .await;
    elsewhere.assert_error(401);
    assert!(
        elsewhere.message().contains("globex"),
        "{}",
        elsewhere.message()
    );
    s.region.stop().await;
}
