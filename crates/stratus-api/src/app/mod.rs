//! The application layer: one function per API operation.
//!
//! Handlers parse HTTP and call exactly one of these functions; these functions check
//! permissions, apply the domain rules from `stratus-core` and call the store. Nothing here
//! knows about HTTP: the inputs are typed — who calls ([`Caller`]), which resource (an
//! [`InstanceRef`], an id), how much of a list ([`Paging`] and the list's filters), on which
//! version ([`Precondition`]) — and the answers are the wire types, so the same functions serve
//! the HTTP API, the in-process host agent and the tests alike.

mod apikeys;
pub mod authz;
pub mod bodies;
mod catalog;
mod checks;
pub mod deploy;
mod host_operations;
mod hosts;
mod images;
mod instances;
pub mod issuer;
mod networks;
pub mod oidc;
pub mod paging;
mod quotas;
pub mod secrets;
pub mod servers;
mod service_accounts;
mod tenancy;
mod tokens;
mod trace;
pub mod watch;

pub use authz::{Permission, Principal};
pub use images::HostImage;
pub use instances::{InstanceBody, InstanceView};
pub use paging::Paging;

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use issuer::Issuer;
use oidc::{ExternalIssuers, OidcIssuerConfig};
use paging::PageTokens;
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
    /// The quotas of every organization that has none of its own.
    pub default_quotas: stratus_core::quota::Limits,
    /// The region's external addresses, when it has any.
    pub external_pool: Option<ipnet::Ipv4Net>,
    /// The key BMC credentials are sealed with (from the data directory's `secrets.key`).
    pub secrets_key: secrets::SecretsKey,
    /// How bare-metal servers are deployed.
    pub baremetal: BareMetalSettings,
}

/// How bare-metal servers are deployed.
#[derive(Clone, Debug, Default)]
pub struct BareMetalSettings {
    /// The deploy ramdisk ISO (built by `scripts/build-deploy-ramdisk.sh`), once known: the
    /// bare-metal conductor sets it when it has built or found the ISO.
    pub ramdisk: Arc<std::sync::OnceLock<std::path::PathBuf>>,
    /// The URL servers being deployed reach this control plane at
    /// (`http://10.0.2.2:8080` from a user-mode network, for instance).
    pub callback_url: Option<String>,
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
            default_quotas: stratus_core::quota::Limits::new(),
            external_pool: None,
            secrets_key: secrets::SecretsKey::random(),
            baremetal: BareMetalSettings::default(),
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
    /// Bumped by writes to bare-metal servers (what the conductor waits on; instance writes
    /// do not wake it).
    pub server_changes: Changes,
    pub config: AppConfig,
    /// When this region was first started (the creation time of its catalog entries).
    pub created_at: DateTime<Utc>,
    heartbeats: Mutex<HashMap<Uuid, Instant>>,
    /// The digest of the host credential, once read (it never changes once made).
    host_credential: std::sync::OnceLock<String>,
    /// Tokens found live recently (by `jti`), so a busy client costs one liveness lookup per
    /// [`apikeys::LIVENESS_TTL`], not one per request.
    live_tokens: Mutex<HashMap<String, Instant>>,
    /// Tokens whose signature was checked recently, with their claims.
    verified_tokens: Mutex<HashMap<String, (stratus_types::auth::Claims, Instant)>>,
    /// Open bare-metal deploy sessions and published seeds.
    deploys: deploy::Deploys,
    /// The source of instance watch events ([`watch`]).
    pub watch: watch::WatchHub,
    /// Instances as JSON, per version ([`bodies`]).
    bodies: bodies::InstanceBodies,
    /// What hosts need to plumb the NICs of instances sent to them lately ([`hosts`]).
    nic_plumbing: hosts::KeptPlumbing,
    /// The requests being served, each on a task of its own (`run_to_completion` in
    /// `lib.rs`), for a shutdown to wait on.
    pub requests: tokio_util::task::TaskTracker,
}

/// Cancelled when the client of a request has gone: what the request only waits for (a long
/// poll) ends there; what it writes goes on.
#[derive(Clone, Default)]
pub struct ClientGone(pub tokio_util::sync::CancellationToken);

impl ClientGone {
    /// Waits for `wait`, or for the client to go (`None`).
    pub async fn unless_gone<T>(&self, wait: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = wait => Some(done),
            _ = self.0.cancelled() => None,
        }
    }
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
        let app = Arc::new(Self {
            store,
            catalog,
            issuer,
            external_issuers,
            pages: PageTokens::new(page_key.into_bytes()),
            changes,
            server_changes: Changes::new(),
            config,
            created_at,
            heartbeats: Mutex::new(HashMap::new()),
            host_credential: std::sync::OnceLock::new(),
            live_tokens: Mutex::new(HashMap::new()),
            verified_tokens: Mutex::new(HashMap::new()),
            deploys: deploy::Deploys::default(),
            watch: watch::WatchHub::new(),
            bodies: Default::default(),
            nic_plumbing: Default::default(),
            requests: tokio_util::task::TaskTracker::new(),
        });
        app.follow_instance_changes();
        Ok(app)
    }

    /// Whether the region can serve: its region and how many instances its database holds
    /// (which proves the database answers).
    pub async fn health(&self) -> Result<serde_json::Value> {
        let instances = self.store.count_instances().await?;
        Ok(serde_json::json!({
            "status": "ok",
            "region": self.region(),
            "instances": instances,
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

/// Who asks for an operation: the principal its credential stands for, and the request it came
/// with (for the logs and the audit trail).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: String,
}

impl Caller {
    /// A caller outside any request (the region's own work, tests).
    pub fn internal(principal: Principal) -> Self {
        Self {
            principal,
            request_id: String::new(),
        }
    }
}

/// An instance, as a path names it.
#[derive(Clone, Copy, Debug)]
pub struct InstanceRef<'a> {
    pub region: &'a str,
    pub project: &'a str,
    pub id: &'a str,
}

/// The version a change is based on (the `If-Match` ETags), if the caller named one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Precondition(pub Option<String>);

impl Precondition {
    /// Fails with 412 unless no version was named, or `*`, or the current ETag `current`.
    pub fn check(&self, current: &str, what: &str) -> Result<()> {
        let Some(header) = &self.0 else {
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
}

/// Filters of the instance list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceFilters {
    /// `k=v,k2!=v2,k3,!k4`.
    pub label_selector: Option<String>,
    /// `watch=true`: a stream of changes ([`watch`]) instead of a page.
    pub watch: bool,
    /// Where a watch resumes.
    pub resource_version: Option<String>,
    /// The `NAME` of `fieldSelector=id=NAME`: a watch of one instance.
    pub field_id: Option<String>,
    /// How long a watch lasts.
    pub timeout_seconds: Option<u64>,
}

/// Filter of the audit trail by organization (all of the operator's when absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub organization_id: Option<String>,
}

/// Filter of the project list by organization.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrganizationFilter {
    pub organization_id: Option<String>,
}

/// Filters of the API key list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiKeyFilters {
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// Keys made by this principal; `*` for every key the caller manages. The caller's own
    /// keys when absent.
    pub created_by: Option<String>,
}

/// Filter of service accounts and credentials by status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusFilter {
    pub status: Option<String>,
}

/// A path segment as a resource id, naming the parameter when it is not one.
pub fn resource_id(param: &str, text: &str) -> Result<stratus_types::ResourceId> {
    stratus_types::ResourceId::parse(text).map_err(|why| Error::invalid(param, why))
}

/// The current time, at the millisecond precision the store keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The ETag of a record with this uid and generation.
pub fn etag(uid: Uuid, generation: i64) -> String {
    format!("\"{}-{generation}\"", &uid.simple().to_string()[..8])
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
