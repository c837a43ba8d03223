//! Bare-metal servers: registration, inspection, provisioning, health, power, logs.
//!
//! A server moves `registered → provisioning → ready`, or to `failed` with the reason in
//! `statusMessage`, and `decommissioned` when deleted. Registration stores the BMC credentials
//! sealed ([`super::secrets`]) and wakes the region's bare-metal conductor, which inspects the
//! server over Redfish (hardware into `hardwareSpecs`, power state) and, after `:provision`,
//! powers it off, ejects any media, sets it to boot from disk, and registers the host row
//! bare-metal instances are placed through (`bm-{uid}`, driver `redfish`, the server's CPUs
//! and memory as its capacity; placement gives such a host one instance at most). The
//! conductor also checks each BMC periodically: `healthStatus` follows, and a server whose BMC
//! stops answering is cordoned until it answers again.
//!
//! Servers are the region's operators' alone (`infrastructure.servers.*`). They are
//! registered in a project (the contract's path), but any project's bare-metal instances may
//! be placed on any ready server of their zone.

use super::{App, Caller, Paging, Permission, check_text, now, resource_id};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use stratus_core::{Error, Result, ids};
use stratus_redfish::{Bmc, BmcAddress, BmcError, BmcLog, Reset, Severity};
use stratus_store::{ServerLogRecord, ServerRecord, Store};
use stratus_types::agent::HostRegistration;
use stratus_types::{
    CpuSpecs, DiskSpecs, GpuSpecs, HardwareSpecs, HealthState, HealthStatus, JobStatus,
    LogSeverity, NicSpecs, ProvisioningState, RamSpecs, Server, ServerAction, ServerBatchFailure,
    ServerBatchResult, ServerCreateRequest, ServerJob, ServerList, ServerLogEntry, ServerLogList,
    ServerUpdateRequest, ServerValidation,
};
use uuid::Uuid;

/// The driver name of the hosts that stand for bare-metal servers.
pub const BAREMETAL_DRIVER: &str = "redfish";

/// Default and largest page of a server's logs.
const LOG_PAGE: u32 = 100;
const LOG_PAGE_MAX: u32 = 1000;

/// The BMC credentials as sealed in a server's row.
#[derive(serde::Serialize, serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The name of the host row a server serves its instance through.
pub fn server_host_name(uid: Uuid) -> String {
    format!("bm-{uid}")
}

/// The host row a server serves its instance through: its CPUs and memory as capacity.
pub fn server_host_registration(server: &ServerRecord) -> HostRegistration {
    HostRegistration {
        name: server_host_name(server.uid),
        zone: server.zone.clone(),
        driver: BAREMETAL_DRIVER.into(),
        vcpus: server.hardware.cpu.count as u32,
        memory_mb: (server.hardware.ram.size_gib * 1024.0) as u64,
        gpus: vec![],
        accelerator: None,
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        underlay: None,
    }
}

/// A log that writes a server's lines to the store, in the order they were recorded.
pub struct ServerLog {
    store: Arc<dyn Store>,
    server: Uuid,
}

static LAST_SEQ: AtomicI64 = AtomicI64::new(0);

/// A log sequence number: the current microsecond, or one past the last one given.
fn next_seq() -> i64 {
    let now = chrono::Utc::now().timestamp_micros();
    let mut last = LAST_SEQ.load(Ordering::Relaxed);
    loop {
        let seq = now.max(last + 1);
        match LAST_SEQ.compare_exchange(last, seq, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return seq,
            Err(seen) => last = seen,
        }
    }
}

impl BmcLog for ServerLog {
    fn record(&self, severity: Severity, message: String) {
        let line = ServerLogRecord {
            server_uid: self.server,
            seq: next_seq(),
            severity: severity.as_str().to_owned(),
            message,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.append_server_log(&line).await {
                tracing::warn!(error = %e, "writing a server log line failed");
            }
        });
    }
}

/// Tags are free text for operators; only their number and size are bounded.
fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > 64 {
        return Err(Error::invalid("tags", "at most 64 tags"));
    }
    for (key, value) in tags {
        if key.len() > 256 || value.len() > 1024 {
            return Err(Error::invalid(
                format!("tags.{key}"),
                "a tag key is at most 256 bytes and its value at most 1024",
            ));
        }
    }
    Ok(())
}

fn unchecked_health() -> HealthStatus {
    HealthStatus {
        status: HealthState::Degraded,
        last_check_time: None,
        failure_reasons: vec!["the BMC has not been checked yet".into()],
    }
}

impl App {
    fn server_self_link(&self, r: &ServerRecord) -> String {
        format!(
            "/v1/regions/{}/projects/{}/infrastructure/servers/{}",
            self.region(),
            r.project,
            r.id
        )
    }

    /// The server as the API shows it (never its credentials).
    pub async fn server_view(&self, r: &ServerRecord) -> Result<Server> {
        let instance = match r.host_id {
            Some(host) => self
                .store
                .list_assignments_on_host(host)
                .await?
                .first()
                .map(|(i, _)| self.instance_self_link(&i.project, &i.id)),
            None => None,
        };
        Ok(Server {
            self_link: self.server_self_link(r),
            uid: r.uid,
            id: resource_id("id", &r.id)?,
            display_name: r.display_name.clone(),
            description: r.description.clone(),
            hardware_specs: r.hardware.clone(),
            bmc_address: r.bmc_address.clone(),
            provisioning_state: ProvisioningState::parse(&r.provisioning_state)
                .unwrap_or(ProvisioningState::Failed),
            health_status: r.health.clone(),
            tags: r.tags.clone(),
            persona: r.persona.clone(),
            zone: resource_id("zone", &r.zone)?,
            status_message: r.status_message.clone(),
            power_state: r.power_state.clone(),
            instance,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    async fn server_for(
        &self,
        caller: &Caller,
        (region, project, id): (&str, &str, &str),
        permission: Permission,
    ) -> Result<ServerRecord> {
        let project = self
            .project_for(&caller.principal, region, project, permission)
            .await?;
        let id = resource_id("id", id)?;
        self.store
            .get_server(&project.id, id.as_str())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("server {id} not found in project {}", project.id))
            })
    }

    /// A session with the server's BMC, logging to the server's logs.
    pub fn server_bmc(&self, r: &ServerRecord) -> Result<Bmc> {
        let address = BmcAddress::parse(&r.bmc_address).map_err(Error::internal)?;
        let opened = self
            .config
            .secrets_key
            .open(&r.bmc_secret, r.uid.as_bytes())?;
        let credentials: Credentials = serde_json::from_slice(&opened)
            .map_err(|e| Error::internal(format!("sealed BMC credentials: {e}")))?;
        Ok(Bmc::new(
            address,
            credentials.username,
            credentials.password,
            self.server_log(r.uid),
        ))
    }

    /// The log of server `uid`.
    pub fn server_log(&self, uid: Uuid) -> Arc<dyn BmcLog> {
        Arc::new(ServerLog {
            store: self.store.clone(),
            server: uid,
        })
    }

    /// Applies `change` to the server's latest row until the write wins; `None` when the
    /// server is gone.
    pub async fn modify_server(
        &self,
        uid: Uuid,
        change: impl Fn(&mut ServerRecord),
    ) -> Result<Option<ServerRecord>> {
        for _ in 0..10 {
            let Some(mut record) = self.store.get_server_by_uid(uid).await? else {
                return Ok(None);
            };
            change(&mut record);
            record.updated_at = now();
            if let Some(stored) = self.store.update_server(&record).await? {
                self.server_changes.bump();
                return Ok(Some(stored));
            }
        }
        Err(Error::Unavailable(
            "the server is changing too often; try again".into(),
        ))
    }

    /// The BMC address and zone of a registration, or a 400 naming what is wrong with it.
    fn check_server_request(&self, body: &ServerCreateRequest) -> Result<(BmcAddress, String)> {
        let address = BmcAddress::parse(body.bmc_address.trim())
            .map_err(|e| Error::invalid("bmcAddress", e))?;
        if body.bmc_username.is_empty() || body.bmc_username.len() > 256 {
            return Err(Error::invalid(
                "bmcUsername",
                "the BMC user name is 1 to 256 characters",
            ));
        }
        if body.bmc_password.is_empty() || body.bmc_password.len() > 1024 {
            return Err(Error::invalid(
                "bmcPassword",
                "the BMC password is 1 to 1024 characters",
            ));
        }
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        check_text("persona", body.persona.as_deref(), 63)?;
        if let Some(tags) = &body.tags {
            check_tags(tags)?;
        }
        let zone = match &body.zone {
            Some(zone) => {
                if self.catalog.zone(zone.as_str()).is_none() {
                    return Err(Error::invalid(
                        "zone",
                        format!("zone {zone} does not exist in region {}", self.region()),
                    ));
                }
                zone.to_string()
            }
            None => self
                .catalog
                .zones
                .first()
                .map(|z| z.id.clone())
                .ok_or_else(|| Error::internal("the region has no zone"))?,
        };
        Ok((address, zone))
    }

    pub async fn register_server(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        body: ServerCreateRequest,
    ) -> Result<Server> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::ServersCreate,
            )
            .await?;
        let (address, zone) = self.check_server_request(&body)?;
        let uid = Uuid::new_v4();
        let credentials = serde_json::to_vec(&Credentials {
            username: body.bmc_username.clone(),
            password: body.bmc_password.clone(),
        })
        .map_err(Error::internal)?;
        let bmc_address = match &address.system {
            Some(system) => format!("{}{system}", address.origin),
            None => address.origin.clone(),
        };
        let now = now();
        let record = ServerRecord {
            uid,
            project: project.id.clone(),
            id: body
                .id
                .clone()
                .unwrap_or_else(|| ids::generate("server"))
                .to_string(),
            zone,
            display_name: body.display_name.clone().unwrap_or_default(),
            description: body.description.clone().unwrap_or_default(),
            bmc_address,
            bmc_secret: self.config.secrets_key.seal(&credentials, uid.as_bytes())?,
            hardware: HardwareSpecs::default(),
            provisioning_state: ProvisioningState::Registered.as_str().into(),
            status_message: Some("registered; inspecting over Redfish".into()),
            health: unchecked_health(),
            power_state: None,
            tags: body.tags.clone().unwrap_or_default(),
            persona: body.persona.clone().unwrap_or_default(),
            host_id: None,
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_server(&record).await?;
        self.server_log(uid).record(
            Severity::Info,
            format!(
                "registered with BMC {} by {}",
                record.bmc_address, caller.principal.subject
            ),
        );
        tracing::info!(server = %record.id, bmc = %record.bmc_address, "server registered");
        self.server_changes.bump();
        self.server_view(&record).await
    }

    pub async fn batch_register_servers(
        &self,
        caller: &Caller,
        at: (&str, &str),
        servers: Vec<ServerCreateRequest>,
    ) -> Result<ServerBatchResult> {
        self.project_for(&caller.principal, at.0, at.1, Permission::ServersCreate)
            .await?;
        if servers.len() > 100 {
            return Err(Error::invalid("servers", "at most 100 servers per batch"));
        }
        // A malformed item fails the whole batch, naming it; what only registering can tell
        // (a taken id or BMC) fails that item alone.
        for (index, body) in servers.iter().enumerate() {
            self.check_server_request(body).map_err(|e| match e {
                Error::InvalidArgument { fields, .. } => {
                    let fields: Vec<_> = fields
                        .into_iter()
                        .map(|f| stratus_core::FieldError {
                            field: format!("servers[{index}].{}", f.field),
                            description: f.description,
                        })
                        .collect();
                    Error::InvalidArgument {
                        message: format!(
                            "invalid value for {}: {}",
                            fields[0].field, fields[0].description
                        ),
                        fields,
                    }
                }
                other => other,
            })?;
        }
        let mut result = ServerBatchResult {
            succeeded: Vec::new(),
            failed: Vec::new(),
        };
        for (index, body) in servers.into_iter().enumerate() {
            match self.register_server(caller, at, body).await {
                Ok(server) => result.succeeded.push(server),
                Err(e) => result.failed.push(ServerBatchFailure {
                    index: index as u32,
                    error: crate::error::error_info(&e),
                }),
            }
        }
        Ok(result)
    }

    pub async fn get_server(&self, caller: &Caller, at: (&str, &str, &str)) -> Result<Server> {
        let record = self.server_for(caller, at, Permission::ServersGet).await?;
        self.server_view(&record).await
    }

    pub async fn list_servers(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        paging: &Paging,
    ) -> Result<ServerList> {
        let project = self
            .project_for(&caller.principal, region, project, Permission::ServersList)
            .await?;
        let key = format!("servers:{}", project.id);
        let request = self.pages.page_request(paging, &key)?;
        let page = self.store.list_servers(&project.id, &request).await?;
        let mut servers = Vec::with_capacity(page.items.len());
        for server in &page.items {
            servers.push(self.server_view(server).await?);
        }
        Ok(ServerList {
            next_page_token: self.next_token(&page, &request, &key, |s| &s.id),
            servers,
        })
    }

    pub async fn update_server(
        &self,
        caller: &Caller,
        at: (&str, &str, &str),
        body: ServerUpdateRequest,
    ) -> Result<Server> {
        let record = self
            .server_for(caller, at, Permission::ServersUpdate)
            .await?;
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        check_text("persona", body.persona.as_deref(), 63)?;
        if let Some(tags) = &body.tags {
            check_tags(tags)?;
        }
        let stored = self
            .modify_server(record.uid, |r| {
                if let Some(v) = &body.display_name {
                    r.display_name = v.clone();
                }
                if let Some(v) = &body.description {
                    r.description = v.clone();
                }
                if let Some(v) = &body.tags {
                    r.tags = v.clone();
                }
                if let Some(v) = &body.persona {
                    r.persona = v.clone();
                }
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("server {} is gone", record.id)))?;
        self.server_view(&stored).await
    }

    /// Takes a server out of the region: refused while an instance is on it.
    pub async fn decommission_server(&self, caller: &Caller, at: (&str, &str, &str)) -> Result<()> {
        let record = self
            .server_for(caller, at, Permission::ServersDelete)
            .await?;
        if record.provisioning_state == ProvisioningState::Decommissioned.as_str() {
            return Ok(());
        }
        if let Some(host) = record.host_id {
            if let Some(instance) = self.store.list_instances_on_host(host).await?.first() {
                return Err(Error::FailedPrecondition(format!(
                    "server {} holds instance {} of project {}; delete the instance first",
                    record.id, instance.id, instance.project
                )));
            }
            if !self.store.remove_host(host).await? {
                return Err(Error::FailedPrecondition(format!(
                    "server {} just took an instance; delete the instance first",
                    record.id
                )));
            }
        }
        self.modify_server(record.uid, |r| {
            r.provisioning_state = ProvisioningState::Decommissioned.as_str().into();
            r.status_message = Some(format!("decommissioned by {}", caller.principal.subject));
            r.host_id = None;
        })
        .await?;
        self.server_log(record.uid).record(
            Severity::Info,
            format!("decommissioned by {}", caller.principal.subject),
        );
        Ok(())
    }

    /// `:provision`: queues the job that makes the server `ready`.
    pub async fn provision_server(
        &self,
        caller: &Caller,
        at: (&str, &str, &str),
    ) -> Result<ServerJob> {
        let record = self
            .server_for(caller, at, Permission::ServersUpdate)
            .await?;
        let state = ProvisioningState::parse(&record.provisioning_state);
        let job_id = format!("provision-{}", record.uid);
        match state {
            Some(ProvisioningState::Ready) => {
                return Ok(ServerJob {
                    job_id,
                    status: JobStatus::Completed,
                });
            }
            Some(ProvisioningState::Provisioning) => {
                return Ok(ServerJob {
                    job_id,
                    status: JobStatus::InProgress,
                });
            }
            Some(ProvisioningState::Decommissioned) => {
                return Err(Error::FailedPrecondition(format!(
                    "server {} is decommissioned; register it again",
                    record.id
                )));
            }
            _ => {}
        }
        self.modify_server(record.uid, |r| {
            r.provisioning_state = ProvisioningState::Provisioning.as_str().into();
            r.status_message = Some("queued for provisioning".into());
        })
        .await?;
        self.server_log(record.uid).record(
            Severity::Info,
            format!("provisioning requested by {}", caller.principal.subject),
        );
        Ok(ServerJob {
            job_id,
            status: JobStatus::Queued,
        })
    }

    /// `:validate`: whether Stratus can deploy the server through its BMC.
    pub async fn validate_server(
        &self,
        caller: &Caller,
        at: (&str, &str, &str),
    ) -> Result<ServerValidation> {
        let record = self.server_for(caller, at, Permission::ServersGet).await?;
        let errors = self.server_bmc(&record)?.validate().await;
        Ok(ServerValidation {
            valid: errors.is_empty(),
            errors,
        })
    }

    /// `:powerOn`, `:powerOff`, `:reboot`, `:inspect`.
    pub async fn server_action(
        &self,
        caller: &Caller,
        at: (&str, &str, &str),
        action: ServerAction,
    ) -> Result<Server> {
        let record = self
            .server_for(caller, at, Permission::ServersUpdate)
            .await?;
        if action != ServerAction::Inspect
            && let Some(host) = record.host_id
            && let Some(instance) = self.store.list_instances_on_host(host).await?.first()
        {
            return Err(Error::FailedPrecondition(format!(
                "server {} holds instance {}; power it through the instance (:start, :stop, \
                 :reboot)",
                record.id, instance.id
            )));
        }
        let bmc = self.server_bmc(&record)?;
        let done = match action {
            ServerAction::PowerOn => bmc.reset(Reset::On).await,
            ServerAction::PowerOff => bmc.reset(Reset::ForceOff).await,
            ServerAction::Reboot => bmc.reset(Reset::ForceRestart).await,
            ServerAction::Inspect => Ok(()),
        };
        if let Err(e) = done {
            return Err(bmc_failure(&record, e));
        }
        self.inspect_server_now(record.uid).await?;
        let record = self
            .store
            .get_server_by_uid(record.uid)
            .await?
            .ok_or_else(|| Error::NotFound(format!("server {} is gone", record.id)))?;
        self.server_view(&record).await
    }

    /// `…/logs`, oldest first, between `start` and `end` when given.
    pub async fn server_logs(
        &self,
        caller: &Caller,
        at: (&str, &str, &str),
        range: (
            Option<chrono::DateTime<chrono::Utc>>,
            Option<chrono::DateTime<chrono::Utc>>,
        ),
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<ServerLogList> {
        let record = self.server_for(caller, at, Permission::ServersGet).await?;
        let limit = page_size.unwrap_or(LOG_PAGE);
        if !(1..=LOG_PAGE_MAX).contains(&limit) {
            return Err(Error::invalid(
                "pageSize",
                format!("must be 1 to {LOG_PAGE_MAX}"),
            ));
        }
        let mut from = range.0.map(|t| t.timestamp_micros()).unwrap_or(0);
        let until = range.1.map(|t| t.timestamp_micros()).unwrap_or(i64::MAX);
        if let Some(token) = page_token {
            let after: i64 = token
                .strip_prefix("s")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Error::invalid("pageToken", "not a page token of this server's logs")
                })?;
            from = from.max(after);
        }
        let mut lines = self
            .store
            .list_server_logs(record.uid, from, until, limit + 1)
            .await?;
        let next_page_token = (lines.len() > limit as usize).then(|| {
            let next = lines.pop().expect("a line past the page");
            format!("s{}", next.seq)
        });
        Ok(ServerLogList {
            logs: lines
                .into_iter()
                .map(|l| ServerLogEntry {
                    timestamp: chrono::DateTime::from_timestamp_micros(l.seq).unwrap_or_default(),
                    severity: LogSeverity::parse(&l.severity),
                    message: l.message,
                })
                .collect(),
            next_page_token,
        })
    }

    /// Reads the server's hardware and power state from its BMC into its row; a refused
    /// credential fails the server, an unanswering BMC marks it unhealthy.
    pub async fn inspect_server_now(&self, uid: Uuid) -> Result<()> {
        let Some(record) = self.store.get_server_by_uid(uid).await? else {
            return Ok(());
        };
        let found = self.server_bmc(&record)?.inspect().await;
        let checked = now();
        match found {
            Ok(found) => {
                let hardware = HardwareSpecs {
                    cpu: CpuSpecs {
                        count: found.cpu_count,
                        model: found.cpu_model,
                    },
                    ram: RamSpecs {
                        size_gib: found.memory_gib,
                    },
                    gpu: GpuSpecs { count: 0 },
                    disks: found
                        .disks
                        .into_iter()
                        .map(|d| DiskSpecs {
                            name: d.name,
                            size_bytes: d.size_bytes,
                        })
                        .collect(),
                    nics: found
                        .nics
                        .into_iter()
                        .map(|n| NicSpecs {
                            id: n.id,
                            mac_address: n.mac,
                        })
                        .collect(),
                    manufacturer: found.manufacturer,
                    model: found.model,
                };
                self.modify_server(uid, |r| {
                    r.hardware = hardware.clone();
                    r.power_state = found.power_state.clone();
                    r.health = HealthStatus {
                        status: HealthState::Healthy,
                        last_check_time: Some(checked),
                        failure_reasons: vec![],
                    };
                    if r.provisioning_state == ProvisioningState::Registered.as_str() {
                        r.status_message =
                            Some("inspected; :provision makes it ready for instances".into());
                    }
                })
                .await?;
            }
            Err(e) => {
                let refused = matches!(e, BmcError::Unauthorized(_));
                let reason = e.to_string();
                self.modify_server(uid, |r| {
                    r.health = HealthStatus {
                        status: HealthState::Failed,
                        last_check_time: Some(checked),
                        failure_reasons: vec![reason.clone()],
                    };
                    if refused || r.provisioning_state == ProvisioningState::Registered.as_str() {
                        r.provisioning_state = ProvisioningState::Failed.as_str().into();
                        r.status_message = Some(format!("inspection failed: {reason}"));
                    }
                })
                .await?;
            }
        }
        Ok(())
    }

    /// The provisioning job: checks the BMC, powers the server off, ejects media, makes the
    /// disk its boot device, and registers its host; the server ends `ready` or `failed`.
    pub async fn provision_server_now(&self, uid: Uuid) -> Result<()> {
        let Some(record) = self.store.get_server_by_uid(uid).await? else {
            return Ok(());
        };
        let bmc = self.server_bmc(&record)?;
        let log = self.server_log(uid);
        log.record(Severity::Info, "provisioning: validating the BMC".into());
        self.modify_server(uid, |r| {
            r.status_message = Some("provisioning: validating the BMC".into());
        })
        .await?;
        let mut problems = bmc.validate().await;
        if problems.is_empty() {
            let steps = async {
                bmc.reset(Reset::ForceOff).await.or_else(|e| match e {
                    // Already off: some BMCs refuse ForceOff then.
                    BmcError::Refused { status, .. } if status < 500 => Ok(()),
                    e => Err(e),
                })?;
                bmc.eject_media().await?;
                bmc.set_boot(stratus_redfish::BootTarget::Hdd, false).await
            };
            if let Err(e) = steps.await {
                problems.push(e.to_string());
            }
        }
        if problems.is_empty() {
            self.inspect_server_now(uid).await?;
        }
        let Some(record) = self.store.get_server_by_uid(uid).await? else {
            return Ok(());
        };
        if record.hardware.cpu.count == 0 && problems.is_empty() {
            problems.push("inspection found no processors".into());
        }
        if !problems.is_empty() {
            let reason = problems.join("; ");
            log.record(Severity::Error, format!("provisioning failed: {reason}"));
            self.modify_server(uid, |r| {
                r.provisioning_state = ProvisioningState::Failed.as_str().into();
                r.status_message = Some(format!("provisioning failed: {reason}"));
            })
            .await?;
            return Ok(());
        }
        if record.provisioning_state != ProvisioningState::Provisioning.as_str() {
            return Ok(()); // decommissioned (or otherwise changed) meanwhile
        }
        let host = self
            .register_host(&server_host_registration(&record))
            .await?;
        let stored = self
            .modify_server(uid, |r| {
                if r.provisioning_state == ProvisioningState::Provisioning.as_str() {
                    r.provisioning_state = ProvisioningState::Ready.as_str().into();
                    r.status_message = Some("ready for a bare-metal instance".into());
                    r.host_id = Some(host);
                }
            })
            .await?;
        if stored.is_some_and(|s| s.host_id == Some(host)) {
            self.store.set_host_scheduling(host, "SCHEDULABLE").await?;
            log.record(Severity::Info, "provisioned: ready for instances".into());
        } else {
            // Decommissioned while it was provisioned: the host goes with it.
            self.store.remove_host(host).await?;
        }
        Ok(())
    }

    /// Marks a server `failed` with `reason` and keeps new instances off it, until an
    /// operator provisions it again.
    pub async fn fail_server(&self, uid: Uuid, reason: String) -> Result<()> {
        let stored = self
            .modify_server(uid, |r| {
                r.provisioning_state = ProvisioningState::Failed.as_str().into();
                r.status_message = Some(reason.clone());
            })
            .await?;
        if let Some(host) = stored.and_then(|s| s.host_id) {
            self.store.set_host_scheduling(host, "CORDONED").await?;
        }
        Ok(())
    }

    /// A periodic check of a server's BMC: `healthStatus` and `powerState` follow, and the
    /// server's host is cordoned when its BMC stops answering and uncordoned when it answers
    /// again.
    pub async fn check_server_health(&self, uid: Uuid) -> Result<()> {
        let Some(record) = self.store.get_server_by_uid(uid).await? else {
            return Ok(());
        };
        let answer = self.server_bmc(&record)?.quiet().power_state().await;
        let checked = now();
        let healthy = answer.is_ok();
        self.modify_server(uid, |r| match &answer {
            Ok(power) => {
                r.power_state = Some(power.clone());
                r.health = HealthStatus {
                    status: HealthState::Healthy,
                    last_check_time: Some(checked),
                    failure_reasons: vec![],
                };
            }
            Err(e) => {
                r.health = HealthStatus {
                    status: HealthState::Failed,
                    last_check_time: Some(checked),
                    failure_reasons: vec![e.to_string()],
                };
            }
        })
        .await?;
        // Only a change of health moves the host: an operator's own cordon stays, and a
        // failed server stays cordoned until it is provisioned again.
        let was_healthy = record.health.status != HealthState::Failed;
        if let Some(host) = record.host_id
            && healthy != was_healthy
        {
            let ready = record.provisioning_state == ProvisioningState::Ready.as_str();
            let scheduling = if healthy && ready {
                "SCHEDULABLE"
            } else {
                "CORDONED"
            };
            self.store.set_host_scheduling(host, scheduling).await?;
        }
        Ok(())
    }
}

/// A BMC failure as the API reports it.
fn bmc_failure(record: &ServerRecord, e: BmcError) -> Error {
    let text = format!("server {}: {e}", record.id);
    if e.is_transient() {
        Error::Unavailable(text)
    } else {
        Error::FailedPrecondition(text)
    }
}
