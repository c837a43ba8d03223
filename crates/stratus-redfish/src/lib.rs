//! A Redfish client for the baseboard management controllers of bare-metal servers.
//!
//! Stratus speaks to a server only through its BMC, over DMTF Redfish, the way OpenStack Ironic's
//! `redfish` hardware type does: power through `ComputerSystem.Reset`, boot device through the
//! system's `Boot` override, and the deploy ramdisk through virtual media. Nothing else —
//! no IPMI, no PXE, no agent on the server — so a server needs only a BMC the control plane
//! reaches and the URL of its system.
//!
//! BMCs differ, and this client is written for the differences rather than for one of them:
//!
//! - Paths are found through links, never assumed: the system from the `Systems` collection
//!   (or the path the operator gave), virtual media under the system when it has it, else
//!   under the managers that manage it (where real BMCs keep it).
//! - Boot overrides are set the moment before they are needed and set again afterwards:
//!   some BMCs refuse a CD target until media is inserted, and some report (or treat) `Once`
//!   as `Continuous`, so after a deploy the disk is made the boot target explicitly.
//! - Every request has a timeout; idempotent requests are retried with backoff when the BMC is
//!   unreachable or answers 5xx, since BMCs are small, busy computers that drop connections.
//!   A refused credential (401/403) is never retried: it would only lock the account.
//! - Every interaction is told to a [`BmcLog`] (method, path, outcome) for the server's logs.
//!   The credentials never are: they travel only in the `Authorization` header.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How serious a log line is; the contract's server log severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Where the client tells what it did with the BMC.
pub trait BmcLog: Send + Sync {
    fn record(&self, severity: Severity, message: String);
}

/// A log that keeps nothing.
pub struct NoLog;

impl BmcLog for NoLog {
    fn record(&self, _: Severity, _: String) {}
}

/// A log passing on all but `Debug` lines.
struct Quiet(Arc<dyn BmcLog>);

impl BmcLog for Quiet {
    fn record(&self, severity: Severity, message: String) {
        if severity != Severity::Debug {
            self.0.record(severity, message);
        }
    }
}

/// Why a BMC request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BmcError {
    /// The BMC refused the credentials.
    #[error("the BMC refused the credentials (HTTP {0}): check the user name and password")]
    Unauthorized(u16),
    /// No answer: connection refused, reset or timed out (after the retries).
    #[error("the BMC did not answer: {0}")]
    Unreachable(String),
    /// The BMC answered with an error.
    #[error("the BMC refused {what} (HTTP {status}): {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    /// The BMC's answer lacks what Redfish promises (a system, a reset action, virtual media).
    #[error("{0}")]
    Unsupported(String),
}

impl BmcError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BmcError::Unreachable(_) => true,
            BmcError::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

pub type BmcResult<T> = Result<T, BmcError>;

/// Where a server's BMC is: `http(s)://host[:port]` and, when the BMC manages several systems,
/// the path of the server's system (`…/redfish/v1/Systems/{id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BmcAddress {
    /// Scheme, host and port, without a trailing slash.
    pub origin: String,
    /// `/redfish/v1/Systems/{id}`, when given.
    pub system: Option<String>,
}

impl BmcAddress {
    /// Parses an operator's `bmcAddress`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.strip_prefix("redfish+").unwrap_or(text);
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{text:?} must be an http:// or https:// URL of the BMC (optionally \
                 redfish+http(s)://)"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{text:?} has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the BMC's credentials go in bmcUsername and bmcPassword, not in the URL".into(),
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{text:?} must not have a query or fragment"));
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let system = match path {
            "" | "/redfish/v1" => None,
            p if p.starts_with("/redfish/v1/Systems/")
                && p.len() > "/redfish/v1/Systems/".len()
                && !p["/redfish/v1/Systems/".len()..].contains('/') =>
            {
                Some(p.to_owned())
            }
            p => {
                return Err(format!(
                    "path {p:?} is not a Redfish system: give the BMC's origin, or \
                     /redfish/v1/Systems/{{id}} after it"
                ));
            }
        };
        Ok(Self { origin, system })
    }
}

/// What inspection found of a server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inspection {
    /// The system's path on the BMC.
    pub system: String,
    /// Its Redfish `UUID` (or `Id` when it has none).
    pub uuid: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
    pub cpu_count: u64,
    pub cpu_model: Option<String>,
    pub memory_gib: f64,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Nic {
    pub id: String,
    pub mac: String,
}

/// A boot device the override can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootTarget {
    Cd,
    Hdd,
}

impl BootTarget {
    fn as_str(self) -> &'static str {
        match self {
            BootTarget::Cd => "Cd",
            BootTarget::Hdd => "Hdd",
        }
    }
}

/// A `ComputerSystem.Reset` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
}

impl Reset {
    fn as_str(self) -> &'static str {
        match self {
            Reset::On => "On",
            Reset::ForceOff => "ForceOff",
            Reset::GracefulShutdown => "GracefulShutdown",
            Reset::ForceRestart => "ForceRestart",
        }
    }
}

/// How long one request may take; inserting media lets the BMC download the image first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const MEDIA_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts of an idempotent request, and the first pause between them (doubling).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A session with one server's BMC.
#[derive(Clone)]
pub struct Bmc {
    http: reqwest::Client,
    address: BmcAddress,
    username: String,
    password: String,
    log: Arc<dyn BmcLog>,
    backoff: Duration,
}

impl std::fmt::Debug for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmc")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Bmc {
    pub fn new(
        address: BmcAddress,
        username: impl Into<String>,
        password: impl Into<String>,
        log: Arc<dyn BmcLog>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // BMCs serve self-signed certificates as a rule; the credential check is what
            // authenticates the session here.
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            address,
            username: username.into(),
            password: password.into(),
            log,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The same session for periodic checks: what succeeds at `Debug` (a GET that answered)
    /// is not logged, so polling a server's power does not flood its log; failures still are.
    pub fn quiet(&self) -> Self {
        Self {
            log: Arc::new(Quiet(self.log.clone())),
            ..self.clone()
        }
    }

    /// The same session, pausing `first` before the first retry (tests shorten it).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    pub fn address(&self) -> &BmcAddress {
        &self.address
    }

    /// One request, retried when `idempotent` and the failure may pass.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
        timeout: Duration,
    ) -> BmcResult<Value> {
        // Paths come from the BMC's own answers: they stay on the BMC (never `//host/…`,
        // `@host/…` or a full URL elsewhere), so the credentials go nowhere else.
        if !path.starts_with('/') || path.starts_with("//") || path.contains(['@', '\\']) {
            return Err(BmcError::Unsupported(format!(
                "the BMC named a path that is not one of its own: {path:?}"
            )));
        }
        let url = format!("{}{}", self.address.origin, path);
        let attempts = if idempotent { ATTEMPTS } else { 1 };
        let mut pause = self.backoff;
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.username, Some(&self.password))
                .header("Accept", "application/json")
                .timeout(timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = match request.send().await {
                Err(e) => Err(BmcError::Unreachable(describe(&e))),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = read_capped(response).await;
                    if status == 401 || status == 403 {
                        Err(BmcError::Unauthorized(status))
                    } else if status >= 400 {
                        Err(BmcError::Refused {
                            what: format!("{method} {path}"),
                            status,
                            message: redfish_message(&text),
                        })
                    } else if text.trim().is_empty() {
                        Ok(Value::Null)
                    } else {
                        serde_json::from_str(&text).map_err(|e| {
                            BmcError::Unsupported(format!(
                                "{method} {path} answered something that is not JSON: {e}"
                            ))
                        })
                    }
                }
            };
            match outcome {
                Ok(value) => {
                    let severity = if method == reqwest::Method::GET {
                        Severity::Debug
                    } else {
                        Severity::Info
                    };
                    self.log.record(severity, format!("{method} {path}: ok"));
                    return Ok(value);
                }
                Err(e) => {
                    let again = e.is_transient() && attempt < attempts;
                    self.log.record(
                        if again {
                            Severity::Warning
                        } else {
                            Severity::Error
                        },
                        format!(
                            "{method} {path}: {e}{}",
                            if again { "; trying again" } else { "" }
                        ),
                    );
                    if !again {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| BmcError::Unreachable("no attempt made".into())))
    }

    async fn get(&self, path: &str) -> BmcResult<Value> {
        self.call(reqwest::Method::GET, path, None, true, REQUEST_TIMEOUT)
            .await
    }

    /// The path of the server's system: the one given, or the only one the BMC manages.
    pub async fn system_path(&self) -> BmcResult<String> {
        if let Some(system) = &self.address.system {
            return Ok(system.clone());
        }
        let systems = self.get("/redfish/v1/Systems").await?;
        let members = links(&systems["Members"]);
        match members.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(BmcError::Unsupported("the BMC manages no system".into())),
            many => Err(BmcError::Unsupported(format!(
                "the BMC manages {} systems ({}): give the server's as \
                 {}/redfish/v1/Systems/{{id}}",
                many.len(),
                many.join(", "),
                self.address.origin
            ))),
        }
    }

    async fn system(&self) -> BmcResult<(String, Value)> {
        let path = self.system_path().await?;
        let system = self.get(&path).await?;
        Ok((path, system))
    }

    /// The system's power state (`On`, `Off`, …).
    pub async fn power_state(&self) -> BmcResult<String> {
        let (_, system) = self.system().await?;
        Ok(system["PowerState"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned())
    }

    /// Reads the server's hardware: processors, memory, disks, NICs, power state.
    pub async fn inspect(&self) -> BmcResult<Inspection> {
        let (path, system) = self.system().await?;
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let mut found = Inspection {
            uuid: text(&system["UUID"])
                .or_else(|| text(&system["Id"]))
                .unwrap_or_default(),
            system: path,
            manufacturer: text(&system["Manufacturer"]),
            model: text(&system["Model"]),
            power_state: text(&system["PowerState"]),
            cpu_count: system["ProcessorSummary"]["Count"].as_u64().unwrap_or(0),
            cpu_model: text(&system["ProcessorSummary"]["Model"]),
            memory_gib: system["MemorySummary"]["TotalSystemMemoryGiB"]
                .as_f64()
                .unwrap_or(0.0),
            ..Inspection::default()
        };
        if let Some(nics) = system["EthernetInterfaces"]["@odata.id"].as_str() {
            for member in links(&self.get(nics).await?["Members"]) {
                let nic = self.get(&member).await?;
                if let Some(mac) = text(&nic["MACAddress"]) {
                    found.nics.push(Nic {
                        id: text(&nic["Id"]).unwrap_or(member),
                        mac: mac.to_ascii_lowercase(),
                    });
                }
            }
        }
        if let Some(storage) = system["SimpleStorage"]["@odata.id"].as_str() {
            for member in links(&self.get(storage).await?["Members"]) {
                let controller = self.get(&member).await?;
                for device in controller["Devices"].as_array().into_iter().flatten() {
                    if let Some(size) = device["CapacityBytes"].as_u64() {
                        found.disks.push(Disk {
                            name: text(&device["Name"]).unwrap_or_else(|| "disk".into()),
                            size_bytes: size,
                        });
                    }
                }
            }
        }
        if found.disks.is_empty()
            && let Some(storage) = system["Storage"]["@odata.id"].as_str()
        {
            for member in links(&self.get(storage).await?["Members"]) {
                let controller = self.get(&member).await?;
                for drive in links(&controller["Drives"]) {
                    let drive = self.get(&drive).await?;
                    if let Some(size) = drive["CapacityBytes"].as_u64() {
                        found.disks.push(Disk {
                            name: text(&drive["Name"]).unwrap_or_else(|| "disk".into()),
                            size_bytes: size,
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    /// Powers the system on or off, or restarts it.
    pub async fn reset(&self, reset: Reset) -> BmcResult<()> {
        let (path, system) = self.system().await?;
        let target = system["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"));
        self.call(
            reqwest::Method::POST,
            &target,
            Some(&json!({ "ResetType": reset.as_str() })),
            false,
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Sets the boot override: `once` for the next boot only, else until changed.
    pub async fn set_boot(&self, target: BootTarget, once: bool) -> BmcResult<()> {
        let path = self.system_path().await?;
        let enabled = if once { "Once" } else { "Continuous" };
        self.call(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({ "Boot": {
                "BootSourceOverrideTarget": target.as_str(),
                "BootSourceOverrideEnabled": enabled,
            }})),
            true,
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// The boot override the BMC reports: target and enabled.
    pub async fn boot(&self) -> BmcResult<(String, String)> {
        let (_, system) = self.system().await?;
        let boot = &system["Boot"];
        Ok((
            boot["BootSourceOverrideTarget"]
                .as_str()
                .unwrap_or("None")
                .to_owned(),
            boot["BootSourceOverrideEnabled"]
                .as_str()
                .unwrap_or("Disabled")
                .to_owned(),
        ))
    }

    /// The virtual CD drive: under the system when it has virtual media, else under a manager
    /// of the system.
    pub async fn virtual_cd(&self) -> BmcResult<String> {
        let (_, system) = self.system().await?;
        let mut collections = Vec::new();
        if let Some(media) = system["VirtualMedia"]["@odata.id"].as_str() {
            collections.push(media.to_owned());
        }
        for manager in links(&system["Links"]["ManagedBy"]) {
            let manager = self.get(&manager).await?;
            if let Some(media) = manager["VirtualMedia"]["@odata.id"].as_str() {
                collections.push(media.to_owned());
            }
        }
        for collection in collections {
            for member in links(&self.get(&collection).await?["Members"]) {
                let device = self.get(&member).await?;
                let types: Vec<&str> = device["MediaTypes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if types.iter().any(|t| matches!(*t, "CD" | "DVD"))
                    || device["Id"]
                        .as_str()
                        .is_some_and(|id| id.eq_ignore_ascii_case("cd"))
                {
                    return Ok(member);
                }
            }
        }
        Err(BmcError::Unsupported(
            "the BMC offers no virtual CD (no VirtualMedia with CD or DVD under the system or \
             its managers)"
                .into(),
        ))
    }

    /// The virtual CD's path and its current state.
    async fn cd_device(&self) -> BmcResult<(String, Value)> {
        let cd = self.virtual_cd().await?;
        let device = self.get(&cd).await?;
        Ok((cd, device))
    }

    /// The target of a virtual-media action of `device` at `cd`, as it names it or by
    /// convention.
    fn media_action(cd: &str, device: &Value, action: &str) -> String {
        device["Actions"][format!("#VirtualMedia.{action}")]["target"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{cd}/Actions/VirtualMedia.{action}"))
    }

    /// Ejects the media of `device` at `cd` when it holds any.
    async fn eject_from(&self, cd: &str, device: &Value) -> BmcResult<()> {
        let inserted = device["Inserted"].as_bool().unwrap_or(false)
            || device["Image"].as_str().is_some_and(|i| !i.is_empty());
        if !inserted {
            return Ok(());
        }
        self.call(
            reqwest::Method::POST,
            &Self::media_action(cd, device, "EjectMedia"),
            Some(&json!({})),
            true,
            MEDIA_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Inserts `image` (a URL the BMC downloads) in the virtual CD, replacing what is there.
    /// `label` is how the log names it (the URL may hold a secret).
    pub async fn insert_media(&self, image: &str, label: &str) -> BmcResult<()> {
        let (cd, device) = self.cd_device().await?;
        self.eject_from(&cd, &device).await?;
        self.log
            .record(Severity::Info, format!("inserting {label} in {cd}"));
        self.call(
            reqwest::Method::POST,
            &Self::media_action(&cd, &device, "InsertMedia"),
            Some(&json!({ "Image": image, "Inserted": true, "WriteProtected": true })),
            false,
            MEDIA_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Ejects whatever the virtual CD holds (nothing to do when empty).
    pub async fn eject_media(&self) -> BmcResult<()> {
        let (cd, device) = self.cd_device().await?;
        self.eject_from(&cd, &device).await
    }

    /// The problems that would stop Stratus from deploying the server, empty when none:
    /// credentials, the system, power control, the boot override and virtual media.
    pub async fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (path, system) = match self.system().await {
            Ok(found) => found,
            Err(e) => return vec![e.to_string()],
        };
        if system["Actions"]["#ComputerSystem.Reset"].is_null() {
            problems.push(format!("{path} offers no ComputerSystem.Reset action"));
        }
        let allowed: Vec<&str> = system["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !allowed.is_empty() {
            for needed in ["Cd", "Hdd"] {
                if !allowed.contains(&needed) {
                    problems.push(format!("{path} cannot boot from {needed}"));
                }
            }
        }
        if let Err(e) = self.virtual_cd().await {
            problems.push(e.to_string());
        }
        problems
    }
}

/// The most of one answer read: Redfish documents are small, and a BMC that sends more is
/// not let fill the control plane's memory.
const MAX_ANSWER: usize = 1 << 20;

/// The body of `response`, cut at [`MAX_ANSWER`] bytes (a cut JSON document fails to parse).
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            body.truncate(MAX_ANSWER);
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The `@odata.id`s of a list of links.
fn links(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["@odata.id"].as_str().map(str::to_owned))
        .collect()
}

/// The message of a Redfish error body, or the body's start.
fn redfish_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if let Some(error) = parsed.as_ref().map(|v| &v["error"]) {
        let extended = error["@Message.ExtendedInfo"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Message"].as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if !extended.is_empty() {
            return extended;
        }
        if let Some(message) = error["message"].as_str() {
            return message.to_owned();
        }
    }
    let trimmed: String = body.trim().chars().take(200).collect();
    if trimmed.is_empty() {
        "no details".into()
    } else {
        trimmed
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The URL is left out: it is known to the caller, and a BMC URL never carries secrets here
    // but a media URL might.
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_the_bmc_and_maybe_its_system() {
        let a = BmcAddress::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(a.origin, "http://127.0.0.1:8000");
        assert_eq!(a.system, None);
        let a = BmcAddress::parse("redfish+https://bmc.example/redfish/v1/Systems/abc/").unwrap();
        assert_eq!(a.origin, "https://bmc.example");
        assert_eq!(a.system.as_deref(), Some("/redfish/v1/Systems/abc"));
        for bad in [
            "bmc.example",
            "ftp://bmc.example",
            "http://user:pw@bmc.example",
            "http://bmc.example/elsewhere",
            "http://bmc.example/redfish/v1/Systems/",
            "http://bmc.example/redfish/v1/Systems/a/b",
            "http://bmc.example/?x=1",
        ] {
            assert!(BmcAddress::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[tokio::test]
    async fn paths_the_bmc_names_elsewhere_are_refused_before_any_request() {
        let bmc = Bmc::new(
            BmcAddress::parse("http://127.0.0.1:9").unwrap(),
            "u",
            "p",
            Arc::new(NoLog),
        );
        for path in [
            "@evil.example/x",
            "//evil.example/x",
            "http://evil/x",
            "/a\\@b",
        ] {
            assert!(
                matches!(bmc.get(path).await, Err(BmcError::Unsupported(_))),
                "{path} was requested"
            );
        }
    }

    #[test]
    fn error_bodies_give_their_message() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"general",
            "@Message.ExtendedInfo":[{"Message":"device Cd does not exist"}]}}"#;
        assert_eq!(redfish_message(body), "device Cd does not exist");
        assert_eq!(redfish_message("  "), "no details");
    }
}
