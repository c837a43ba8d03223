//! `stratus servers …`: bare-metal servers, for the region's operators.

use super::output::{Tabular, emit, fields, when};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::{Server, ServerCreateRequest, ServerJob, ServerLogEntry, ServerValidation};

/// `stratus servers …`.
#[derive(Subcommand)]
pub enum ServersCommand {
    /// List the project's servers: state, health, power, hardware, instance.
    List,
    /// Show one server.
    Get { id: String },
    /// Register a server by its BMC's Redfish address; Stratus inspects it at once.
    Register {
        /// The server's name (made up when absent).
        id: Option<String>,
        /// `http(s)://host[:port]`, then `/redfish/v1/Systems/{id}` when the BMC manages
        /// several systems.
        #[arg(long)]
        bmc_address: String,
        #[arg(long)]
        bmc_username: String,
        /// The BMC password; read from STRATUS_BMC_PASSWORD when not given, so it stays out
        /// of the shell's history.
        #[arg(long, env = "STRATUS_BMC_PASSWORD", hide_env_values = true)]
        bmc_password: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Make a registered (or failed) server ready for bare-metal instances.
    Provision { id: String },
    /// Check that Stratus can deploy the server through its BMC.
    Validate { id: String },
    /// Power a server on (one no instance is on).
    PowerOn { id: String },
    /// Power a server off (one no instance is on).
    PowerOff { id: String },
    /// Restart a server (one no instance is on).
    Reboot { id: String },
    /// Read the server's hardware and power state again.
    Inspect { id: String },
    /// What Stratus did with the server's BMC.
    Logs { id: String },
    /// Take a server out of the region (no instance may be on it).
    Decommission { id: String },
}

impl ServersCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let servers = session.client.servers(&session.region, &session.project);
        let output = session.output;
        match self {
            ServersCommand::List => emit(output, &servers.list().await?),
            ServersCommand::Get { id } => emit(output, &servers.get(&id).await?),
            ServersCommand::Register {
                id,
                bmc_address,
                bmc_username,
                bmc_password,
                display_name,
            } => {
                let id = id
                    .map(|i| {
                        stratus_types::ResourceId::parse(&i)
                            .map_err(|e| Failure::Usage(format!("server id: {e}")))
                    })
                    .transpose()?;
                let body = ServerCreateRequest {
                    id,
                    bmc_address,
                    bmc_username,
                    bmc_password,
                    display_name,
                    ..ServerCreateRequest::default()
                };
                emit(output, &servers.register(&body).await?)
            }
            ServersCommand::Provision { id } => emit(output, &servers.provision(&id).await?),
            ServersCommand::Validate { id } => emit(output, &servers.validate(&id).await?),
            ServersCommand::PowerOn { id } => emit(output, &servers.act(&id, "powerOn").await?),
            ServersCommand::PowerOff { id } => emit(output, &servers.act(&id, "powerOff").await?),
            ServersCommand::Reboot { id } => emit(output, &servers.act(&id, "reboot").await?),
            ServersCommand::Inspect { id } => emit(output, &servers.act(&id, "inspect").await?),
            ServersCommand::Logs { id } => emit(output, &servers.logs(&id).await?),
            ServersCommand::Decommission { id } => {
                servers.decommission(&id).await?;
                super::out(&format!("server {id} decommissioned\n"));
                Ok(())
            }
        }
    }
}

fn state(server: &Server) -> String {
    server.provisioning_state.as_str().to_owned()
}

fn health(server: &Server) -> String {
    format!("{:?}", server.health_status.status).to_lowercase()
}

fn hardware(server: &Server) -> String {
    let specs = &server.hardware_specs;
    let disk_gb: u64 = specs.disks.iter().map(|d| d.size_bytes).sum::<u64>() >> 30;
    format!(
        "{} CPU, {:.1} GiB, {disk_gb} GB disk",
        specs.cpu.count, specs.ram.size_gib
    )
}

fn instance(server: &Server) -> String {
    server
        .instance
        .as_deref()
        .and_then(|link| link.rsplit('/').next())
        .unwrap_or("")
        .to_owned()
}

impl Tabular for Vec<Server> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    state(s),
                    health(s),
                    s.power_state.clone().unwrap_or_default(),
                    hardware(s),
                    instance(s),
                    s.bmc_address.clone(),
                ]
            })
            .collect();
        (
            vec![
                "ID", "STATE", "HEALTH", "POWER", "HARDWARE", "INSTANCE", "BMC",
            ],
            rows,
        )
    }
}

impl Tabular for Server {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let macs = self
            .hardware_specs
            .nics
            .iter()
            .map(|n| n.mac_address.clone())
            .collect::<Vec<_>>()
            .join(", ");
        fields(vec![
            ("id", self.id.to_string()),
            ("zone", self.zone.to_string()),
            ("state", state(self)),
            ("message", self.status_message.clone().unwrap_or_default()),
            ("health", health(self)),
            (
                "health problems",
                self.health_status.failure_reasons.join("; "),
            ),
            ("power", self.power_state.clone().unwrap_or_default()),
            ("hardware", hardware(self)),
            ("NICs", macs),
            ("instance", instance(self)),
            ("BMC", self.bmc_address.clone()),
            ("created", when(&self.created_at)),
        ])
    }
}

impl Tabular for ServerJob {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("job", self.job_id.clone()),
            ("status", format!("{:?}", self.status).to_lowercase()),
        ])
    }
}

impl Tabular for ServerValidation {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("valid", self.valid.to_string()),
            ("problems", self.errors.join("; ")),
        ])
    }
}

impl Tabular for Vec<ServerLogEntry> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|l| {
                vec![
                    when(&l.timestamp),
                    format!("{:?}", l.severity).to_lowercase(),
                    l.message.clone(),
                ]
            })
            .collect();
        (vec!["TIME", "SEVERITY", "MESSAGE"], rows)
    }
}
