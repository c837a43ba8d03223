//! `stratus quotas …`: an organization's quotas and what it uses of each.

use super::output::{Tabular, emit};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::{Quotas, QuotasUpdateRequest};

/// `stratus quotas …`.
#[derive(Subcommand)]
pub enum QuotasCommand {
    /// Show each quota with its usage (owners and admins of the organization, operators).
    Get {
        /// The organization (default: the one owning the current project).
        #[arg(long)]
        organization: Option<String>,
    },
    /// Set quotas (the region's operators); `unlimited` lifts one.
    Set {
        /// The organization (default: the one owning the current project).
        #[arg(long)]
        organization: Option<String>,
        #[arg(long, value_name = "N|unlimited")]
        cpu_cores: Option<Limit>,
        /// GiB of instance memory.
        #[arg(long, value_name = "N|unlimited")]
        ram_gb: Option<Limit>,
        #[arg(long, value_name = "N|unlimited")]
        gpu_count: Option<Limit>,
        /// TiB of instance disks.
        #[arg(long, value_name = "N|unlimited")]
        storage_tb: Option<Limit>,
        #[arg(long, value_name = "N|unlimited")]
        cluster_count: Option<Limit>,
        #[arg(long, value_name = "N|unlimited")]
        instance_count: Option<Limit>,
        /// GiB of instance disks.
        #[arg(long, value_name = "N|unlimited")]
        disk_gb: Option<Limit>,
        /// GPUs of one type, e.g. `--gpu-type nvidia-h100=4` (repeatable).
        #[arg(long, value_name = "TYPE=N|unlimited")]
        gpu_type: Vec<String>,
    },
}

/// A limit as typed: a number, or `unlimited`.
#[derive(Clone, Copy, Debug)]
pub struct Limit(Option<u64>);

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "unlimited" {
            return Ok(Limit(None));
        }
        text.parse()
            .map(|n| Limit(Some(n)))
            .map_err(|_| format!("{text:?} is neither a number nor `unlimited`"))
    }
}

impl QuotasCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let client = &session.client;
        let organization_of = |given: Option<String>| async move {
            match given {
                Some(organization) => Ok::<_, Failure>(organization),
                None => Ok(client
                    .get_project(&session.project)
                    .await?
                    .organization_id
                    .to_string()),
            }
        };
        match self {
            QuotasCommand::Get { organization } => {
                let organization = organization_of(organization).await?;
                emit(session.output, &client.get_quotas(&organization).await?)
            }
            QuotasCommand::Set {
                organization,
                cpu_cores,
                ram_gb,
                gpu_count,
                storage_tb,
                cluster_count,
                instance_count,
                disk_gb,
                gpu_type,
            } => {
                let mut request = QuotasUpdateRequest {
                    cpu_cores: cpu_cores.map(|l| l.0),
                    ram_gb: ram_gb.map(|l| l.0),
                    gpu_count: gpu_count.map(|l| l.0),
                    storage_tb: storage_tb.map(|l| l.0),
                    cluster_count: cluster_count.map(|l| l.0),
                    instance_count: instance_count.map(|l| l.0),
                    disk_gb: disk_gb.map(|l| l.0),
                    ..QuotasUpdateRequest::default()
                };
                for pair in gpu_type {
                    let (name, limit) = pair.split_once('=').ok_or_else(|| {
                        Failure::Usage(format!(
                            "--gpu-type {pair:?}: write TYPE=N or TYPE=unlimited"
                        ))
                    })?;
                    let limit: Limit = limit
                        .parse()
                        .map_err(|e| Failure::Usage(format!("--gpu-type {pair:?}: {e}")))?;
                    request.gpu_count_by_type.insert(name.to_owned(), limit.0);
                }
                if request == QuotasUpdateRequest::default() {
                    return Err(Failure::Usage(
                        "name at least one quota to set, e.g. --cpu-cores 64".into(),
                    ));
                }
                let organization = organization_of(organization).await?;
                emit(
                    session.output,
                    &client.update_quotas(&organization, &request).await?,
                )
            }
        }
    }
}

impl Tabular for Quotas {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let row = |name: &str, limit: Option<u64>, used: u64| {
            vec![
                name.to_owned(),
                used.to_string(),
                limit.map_or("unlimited".into(), |l| l.to_string()),
            ]
        };
        let u = &self.usage;
        let mut rows = vec![
            row("cpuCores", self.cpu_cores, u.cpu_cores),
            row("ramGb", self.ram_gb, u.ram_gb),
            row("gpuCount", self.gpu_count, u.gpu_count),
            row("storageTb", self.storage_tb, u.storage_tb),
            row("diskGb", self.disk_gb, u.disk_gb),
            row("instanceCount", self.instance_count, u.instance_count),
            row("clusterCount", self.cluster_count, u.cluster_count),
        ];
        let types: std::collections::BTreeSet<&String> = self
            .gpu_count_by_type
            .keys()
            .chain(u.gpu_count_by_type.keys())
            .collect();
        for gpu_type in types {
            rows.push(row(
                &format!("gpuCountByType.{gpu_type}"),
                self.gpu_count_by_type.get(gpu_type).copied(),
                u.gpu_count_by_type.get(gpu_type).copied().unwrap_or(0),
            ));
        }
        (vec!["QUOTA", "USED", "LIMIT"], rows)
    }
}
