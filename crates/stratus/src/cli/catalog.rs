//! `stratus instance-types …` and `stratus images …`.

use super::output::{Tabular, emit, fields, last_segment, when};
use super::{Failure, Session};
use clap::{Subcommand, ValueEnum};
use std::time::{Duration, Instant};
use stratus_types::{
    Image, ImageCreateRequest, ImageFormat, ImageStatus, InstanceType, ResourceId,
};

/// `stratus instance-types …`.
#[derive(Subcommand)]
pub enum InstanceTypesCommand {
    /// List the instance types of the zone.
    List,
    /// Show one instance type.
    Get { id: String },
}

/// `stratus images …`.
#[derive(Subcommand)]
pub enum ImagesCommand {
    /// List the region's images.
    List,
    /// Show one image.
    Get { id: String },
    /// Register an image; the region imports it and verifies its checksum (administrators).
    Create {
        id: String,
        /// Absolute path on the control plane's host, or an http(s) URL.
        #[arg(long)]
        source: String,
        #[arg(long, value_enum)]
        format: Format,
        /// Expected SHA-256 of the file, hex.
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        os: Option<String>,
        #[arg(long, value_name = "GB")]
        min_disk_gb: Option<u32>,
        #[arg(long)]
        display_name: Option<String>,
        /// Wait until the import ends (READY, or FAILED with exit code 4).
        #[arg(long)]
        wait: bool,
        /// Seconds to wait at most (with --wait).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Delete an image (administrators).
    Delete { id: String },
}

/// `--format` of an image.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Qcow2,
    Raw,
}

impl InstanceTypesCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let catalog = session.client.catalog(&session.region);
        match self {
            InstanceTypesCommand::List => {
                let list = catalog.instance_types(&session.zone).await?;
                emit(session.output, &list.instance_types)
            }
            InstanceTypesCommand::Get { id } => emit(
                session.output,
                &catalog.instance_type(&session.zone, &id).await?,
            ),
        }
    }
}

impl ImagesCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let catalog = session.client.catalog(&session.region);
        match self {
            ImagesCommand::List => emit(session.output, &catalog.images().await?.images),
            ImagesCommand::Get { id } => emit(session.output, &catalog.image(&id).await?),
            ImagesCommand::Create {
                id,
                source,
                format,
                sha256,
                os,
                min_disk_gb,
                display_name,
                wait,
                timeout,
            } => {
                let request = ImageCreateRequest {
                    id: ResourceId::parse(&id)
                        .map_err(|e| Failure::Usage(format!("invalid image id: {e}")))?,
                    display_name,
                    description: None,
                    os,
                    source,
                    format: match format {
                        Format::Qcow2 => ImageFormat::Qcow2,
                        Format::Raw => ImageFormat::Raw,
                    },
                    sha256,
                    min_disk_gb,
                };
                let mut image = catalog.create_image(&request).await?;
                let deadline = Instant::now() + Duration::from_secs(timeout);
                let mut last = String::new();
                while wait && matches!(image.status, ImageStatus::Pending | ImageStatus::Importing)
                {
                    let now = format!(
                        "{} {}",
                        image.status.as_str(),
                        image.status_message.as_deref().unwrap_or("")
                    );
                    if now != last {
                        eprintln!("image {id}: {now}");
                        last = now;
                    }
                    if Instant::now() >= deadline {
                        return Err(Failure::Timeout(format!(
                            "timed out after {timeout}s waiting for image {id} to import; it is {}",
                            image.status.as_str()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    image = catalog.image(&id).await?;
                }
                emit(session.output, &image)?;
                if wait && image.status == ImageStatus::Failed {
                    return Err(Failure::Failed(format!(
                        "image {id} failed to import: {}",
                        image.status_message.as_deref().unwrap_or("no reason given")
                    )));
                }
                Ok(())
            }
            ImagesCommand::Delete { id } => {
                catalog.delete_image(&id).await?;
                eprintln!("image {id} deleted");
                Ok(())
            }
        }
    }
}

impl Tabular for Vec<InstanceType> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.vcpus.to_string(),
                    if t.memory_mb % 1024 == 0 {
                        (t.memory_mb / 1024).to_string()
                    } else {
                        format!("{:.1}", t.memory_mb as f64 / 1024.0)
                    },
                    gpus(t),
                    if t.baremetal { "yes" } else { "" }.to_owned(),
                    t.display_name.clone(),
                ]
            })
            .collect();
        (
            vec!["ID", "VCPUS", "MEMORY GB", "GPUS", "BARE METAL", "NAME"],
            rows,
        )
    }
}

impl Tabular for InstanceType {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.clone()),
            ("vcpus", self.vcpus.to_string()),
            ("memory", format!("{} MB", self.memory_mb)),
            ("gpus", gpus(self)),
            ("bare metal", self.baremetal.to_string()),
            ("zone", last_segment(&self.zone).to_owned()),
            ("self link", self.self_link.clone()),
        ])
    }
}

fn gpus(t: &InstanceType) -> String {
    t.gpus
        .iter()
        .map(|g| format!("{} x {}", g.count, last_segment(&g.gpu_type)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tabular for Vec<Image> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|i| {
                vec![
                    i.id.clone(),
                    i.status.as_str().to_owned(),
                    i.os.clone(),
                    i.format.as_str().to_owned(),
                    i.min_disk_gb.to_string(),
                    i.status_message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        (
            vec!["ID", "STATUS", "OS", "FORMAT", "MIN DISK GB", "MESSAGE"],
            rows,
        )
    }
}

impl Tabular for Image {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.clone()),
            ("status", self.status.as_str().to_owned()),
            ("message", self.status_message.clone().unwrap_or_default()),
            ("os", self.os.clone()),
            ("format", self.format.as_str().to_owned()),
            ("size", format!("{} bytes", self.size_bytes)),
            ("min disk", format!("{} GB", self.min_disk_gb)),
            ("source", self.source.clone().unwrap_or_default()),
            ("sha256", self.sha256.clone().unwrap_or_default()),
            ("created", when(&self.created_at)),
            ("self link", self.self_link.clone()),
        ])
    }
}
