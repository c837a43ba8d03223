//! The application layer: one function per API operation.
//!
//! Handlers parse HTTP and call exactly one of these functions; these functions check
//! permissions, apply the domain rules from `stratus-core` and call the store. Nothing here
//! knows about HTTP, so the same functions serve the in-process agent, the CLI's tests and,
//! later, other transports.

mod apikeys;
pub mod authz;
mod catalog;
mod checks;
mod hosts;
mod images;
mod instances;
mod service_accounts;
mod tenancy;
mod tokens;

pub use authz::Permission;
pub use images::HostImage;

use crate::auth::Issuer;
use crate::oidc::{ExternalIssuers, OidcIssuerConfig};
use crate::paging::PageTokens;
use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_core::catalog::Catalog;
use stratus_core::import_sources::ImportSources;
use stratus_core::{Error, Result};
use stratus_store::{Changes, Store};
use uuid::Uuid;

/// Settings of the application layer.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// A host whose agent has not polled for this long takes no new instances, and its
    /// instances are marked REPAIRING.
    pub host_timeout: Duration,
    /// Serial console bytes kept per instance.
    pub console_keep_bytes: u64,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// `iss` of the tokens this region signs.
    pub issuer: String,
    /// `aud` of the tokens this region accepts.
    pub audience: String,
    /// External OIDC issuers whose tokens are accepted too.
    pub oidc: Vec<OidcIssuerConfig>,
    /// Where registered images may be imported from.
    pub import_sources: ImportSources,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            host_timeout: Duration::from_secs(15),
            console_keep_bytes: 1 << 20,
            token_ttl: Duration::from_secs(900),
            issuer: "stratus".into(),
            audience: "stratus".into(),
            oidc: Vec::new(),
            import_sources: ImportSources::default(),
        }
    }
}

/// The application: state and catalog, and the operations on them.
pub struct App {
    pub store: Arc<dyn Store>,
    pub catalog: Catalog,
    pub issuer: Issuer,
    /// The configured external OIDC issuers with their cached keys.
    pub external_issuers: ExternalIssuers,
    pub pages: PageTokens,
    pub changes: Changes,
    pub config: AppConfig,
    /// When this region was first started (the creation time of its catalog entries).
    pub created_at: DateTime<Utc>,
    heartbeats: Mutex<HashMap<Uuid, Instant>>,
    /// Tokens found live recently (by `jti`), so a busy client costs one liveness lookup per
    /// [`apikeys::LIVENESS_TTL`], not one per request.
    live_tokens: Mutex<HashMap<String, Instant>>,
}

impl App {
    /// Builds the application over `store`, loading (or creating) its keys and settings.
    pub async fn new(
        store: Arc<dyn Store>,
        catalog: Catalog,
        config: AppConfig,
        changes: Changes,
    ) -> Result<Arc<Self>> {
        catalog.validate().map_err(Error::internal)?;
        let issuer = Issuer::load(
            store.as_ref(),
            config.issuer.clone(),
            config.audience.clone(),
            config.token_ttl,
        )
        .await?;
        let external_issuers = ExternalIssuers::new(&config.oidc, &config.issuer)?;
        let page_key = store
            .setting_or_init(
                "page-token-key",
                &base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
            )
            .await?;
        let created_at = store
            .setting_or_init("region-created-at", &now().to_rfc3339())
            .await?;
        let created_at = DateTime::parse_from_rfc3339(&created_at)
            .map_err(|e| Error::internal(format!("bad region-created-at: {e}")))?
            .with_timezone(&Utc);
        Ok(Arc::new(Self {
            store,
            catalog,
            issuer,
            external_issuers,
            pages: PageTokens::new(page_key.into_bytes()),
            changes,
            config,
            created_at,
            heartbeats: Mutex::new(HashMap::new()),
            live_tokens: Mutex::new(HashMap::new()),
        }))
    }

    /// The region this deployment serves.
    pub fn region(&self) -> &str {
        &self.catalog.region.id
    }

    /// Fails with 404 unless `region` is the one served here.
    pub fn check_region(&self, region: &str) -> Result<()> {
        if region == self.region() {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "region {region} is not served here; this endpoint serves region {}",
                self.region()
            )))
        }
    }
}

/// The current time, at the millisecond precision the store keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The ETag of a record with this uid and generation.
pub fn etag(uid: Uuid, generation: i64) -> String {
    format!("\"{}-{generation}\"", &uid.simple().to_string()[..8])
}

/// Fails with 412 when `if_match` is given and names neither `*` nor the current ETag.
pub fn check_if_match(if_match: Option<&str>, current: &str, what: &str) -> Result<()> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let matches = header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == current);
    if matches {
        Ok(())
    } else {
        Err(Error::StaleVersion(format!(
            "{what} has changed since version {header} was read (it is now {current}); read it again"
        )))
    }
}

/// Checks an optional free-text field against a length limit.
pub fn check_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<()> {
    match value {
        Some(v) if v.chars().count() > max_chars => Err(Error::invalid(
            field,
            format!("at most {max_chars} characters are allowed"),
        )),
        _ => Ok(()),
    }
}
