//! `stratus instances …`.

use super::output::{OutputFormat, Tabular, emit, fields, last_segment, when};
use super::wait::{self, Goal};
use super::{Failure, Session, read_file};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use stratus_client::InstanceAction;
use stratus_types::{
    Disk, DiskMode, Instance, InstanceCreateRequest, InstanceStatus, InstanceUpdateRequest, Labels,
    MetadataItem, MetadataKey, ResourceId,
};

/// `stratus instances …`.
#[derive(Subcommand)]
pub enum InstancesCommand {
    /// List the project's instances (every page).
    List {
        /// Only instances whose labels match, e.g. `tier=web,env!=prod`.
        #[arg(long, short = 'l')]
        selector: Option<String>,
    },
    /// Show one instance.
    Get { id: String },
    /// Create an instance.
    Create(CreateArgs),
    /// Change an instance's name, description, labels or metadata.
    Update(UpdateArgs),
    /// Delete an instance (its disks go with it).
    Delete {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start a stopped instance.
    Start {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop an instance (ACPI power-off, then a hard stop).
    Stop {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Restart a running instance.
    Reboot {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Pause an instance, keeping its memory.
    Suspend {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Continue a suspended instance.
    Resume {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print the instance's serial console.
    Console {
        id: String,
        /// Keep printing new output until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Byte offset to start from.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Log in to the instance with ssh (at its external address when it has one), or run a
    /// command there: `stratus instances ssh web-1 -- uptime`.
    Ssh {
        id: String,
        /// User to log in as (default: the user of its first ssh key, else $USER).
        #[arg(long, short = 'l')]
        user: Option<String>,
        /// Private key file (default: ssh's own choice).
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The command to run, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

/// `--wait` and `--timeout`.
#[derive(Args, Clone, Copy)]
pub struct WaitArgs {
    /// Follow the lifecycle until the operation is done, showing each status change.
    #[arg(long)]
    wait: bool,
    /// Seconds to wait at most (with --wait); exit code 3 when they pass.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    timeout: f64,
}

impl WaitArgs {
    fn timeout(&self) -> Result<Duration, Failure> {
        Duration::try_from_secs_f64(self.timeout)
            .map_err(|_| Failure::Usage(format!("--timeout {} is not a duration", self.timeout)))
    }
}

/// `stratus instances create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Id of the new instance (generated when absent).
    id: Option<String>,
    /// Instance type: an id in the zone (`e2-small`) or a full URI.
    #[arg(long = "type", short = 't')]
    instance_type: String,
    /// Boot disk image: an id in the region (`stratus-guest`) or a full URI.
    #[arg(long)]
    image: Option<String>,
    /// Boot disk size in GB (with --image; default: the image's minimum).
    #[arg(long, value_name = "GB")]
    disk_size: Option<u32>,
    /// A human-friendly name.
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// The guest's hostname (default: the id).
    #[arg(long)]
    hostname: Option<String>,
    /// A label `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// A metadata entry `key=value` (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Public key file(s) to authorize, stored as the `ssh-keys` metadata entry.
    #[arg(long = "ssh-key", value_name = "FILE")]
    ssh_keys: Vec<PathBuf>,
    /// User name the ssh keys are for (default: $USER).
    #[arg(long)]
    ssh_user: Option<String>,
    /// Cloud-init user-data file, stored as the `user-data` metadata entry.
    #[arg(long, value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// The network of its NIC (default: the project's network `default`).
    #[arg(long)]
    network: Option<String>,
    /// The NIC's IPv4 address in that network (default: the next free one).
    #[arg(long)]
    ip: Option<String>,
    /// An EXTERNAL address of the project that reaches the NIC from outside (1:1 NAT).
    #[arg(long, value_name = "ADDRESS")]
    external_address: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// `stratus instances update`.
#[derive(Args)]
pub struct UpdateArgs {
    id: String,
    /// A human-friendly name.
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Set a label `key=value` (repeatable); other labels are kept.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Remove a label (repeatable).
    #[arg(long = "remove-label", value_name = "KEY")]
    remove_labels: Vec<String>,
    /// Set a metadata entry `key=value` (repeatable); other entries are kept.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Remove a metadata entry (repeatable).
    #[arg(long = "remove-metadata", value_name = "KEY")]
    remove_metadata: Vec<String>,
}

impl InstancesCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let instances = session.instances();
        match self {
            InstancesCommand::List { selector } => {
                let list = instances.list_all(selector.as_deref()).await?;
                emit(session.output, &list)
            }
            InstancesCommand::Get { id } => emit(session.output, &instances.get(&id).await?),
            InstancesCommand::Create(args) => {
                let wait = args.wait;
                let request = create_request(session, args)?;
                let created = instances.create(&request).await?;
                finish(
                    session,
                    &created,
                    Goal::Status(InstanceStatus::Running),
                    wait,
                )
                .await
            }
            InstancesCommand::Update(args) => {
                // Labels and metadata are merged into what was read; If-Match makes sure
                // nobody changed them in between (412 otherwise, and nothing is lost).
                let current = instances.get_versioned(&args.id).await?;
                let request = update_request(&current.value, &args)?;
                let updated = match &current.etag {
                    Some(etag) => instances.update_if_match(&args.id, &request, etag).await?,
                    None => instances.update(&args.id, &request).await?,
                };
                emit(session.output, &updated)
            }
            InstancesCommand::Delete { id, wait } => {
                instances.delete(&id).await?;
                if wait.wait {
                    wait::until(session, &id, None, Goal::Gone, wait.timeout()?).await?;
                    eprintln!("instance {id} deleted");
                } else {
                    eprintln!("instance {id} is being deleted");
                }
                Ok(())
            }
            InstancesCommand::Start { id, wait } => {
                act(session, &id, InstanceAction::Start, wait).await
            }
            InstancesCommand::Stop { id, wait } => {
                act(session, &id, InstanceAction::Stop, wait).await
            }
            InstancesCommand::Reboot { id, wait } => {
                act(session, &id, InstanceAction::Reboot, wait).await
            }
            InstancesCommand::Suspend { id, wait } => {
                act(session, &id, InstanceAction::Suspend, wait).await
            }
            InstancesCommand::Resume { id, wait } => {
                act(session, &id, InstanceAction::Resume, wait).await
            }
            InstancesCommand::Console { id, follow, start } => {
                console(session, &id, follow, start).await
            }
            InstancesCommand::Ssh {
                id,
                user,
                identity,
                command,
            } => ssh(session, &id, user, identity, command).await,
        }
    }
}

/// `stratus instances ssh`: runs ssh to the instance's external address (or, without one, its
/// internal address, reachable from its own network only), as the user its ssh key is for.
async fn ssh(
    session: &Session,
    id: &str,
    user: Option<String>,
    identity: Option<PathBuf>,
    command: Vec<String>,
) -> Result<(), Failure> {
    let instance = session.instances().get(id).await?;
    let nic = instance
        .nics
        .first()
        .ok_or_else(|| Failure::Usage(format!("instance {id} has no network interface")))?;
    let address = match (&nic.external_ipv4_address, &nic.ipv4_address) {
        (Some(external), _) => external.clone(),
        (None, Some(internal)) => {
            eprintln!(
                "instance {id} has no external address; {internal} is reachable from its own \
                 network only (create it with --external-address to reach it from anywhere)"
            );
            internal.clone()
        }
        (None, None) => {
            return Err(Failure::Usage(format!("instance {id} has no address yet")));
        }
    };
    let user = user
        .or_else(|| ssh_key_user(&instance))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    // Host keys are pinned per instance, not per address: addresses are handed out again.
    let config_dir = super::profiles::config_dir()?;
    std::fs::create_dir_all(&config_dir)
        .map_err(|e| Failure::Usage(format!("{}: {e}", config_dir.display())))?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.args(ssh_args(
        &user,
        &address,
        &instance.uid.to_string(),
        &config_dir.join("known_hosts"),
        identity.as_deref(),
        &command,
    )?);
    let status = ssh
        .status()
        .map_err(|e| Failure::Usage(format!("running ssh: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        code => std::process::exit(code.unwrap_or(255)),
    }
}

/// The arguments of `ssh` for logging in as `user` to `address`. Both come from instance data
/// any member of the project can write, so neither may read as an option to ssh: the user
/// must be a plain login name and the address an IP address, and the destination follows `--`.
fn ssh_args(
    user: &str,
    address: &str,
    uid: &str,
    known_hosts: &std::path::Path,
    identity: Option<&std::path::Path>,
    command: &[String],
) -> Result<Vec<std::ffi::OsString>, Failure> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if user.is_empty() || user.starts_with('-') || !user.chars().all(plain) {
        return Err(Failure::Usage(format!(
            "{user:?} is not a login name to ssh as; give one with --user"
        )));
    }
    if address.parse::<std::net::IpAddr>().is_err() {
        return Err(Failure::Usage(format!("{address:?} is not an IP address")));
    }
    let mut args: Vec<std::ffi::OsString> = vec![
        "-o".into(),
        "StrictHostKeyChecking=accept-new".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()).into(),
        "-o".into(),
        format!("HostKeyAlias=stratus-{uid}").into(),
    ];
    if let Some(identity) = identity {
        args.push("-i".into());
        args.push(identity.into());
    }
    args.extend(["-l".into(), user.into(), "--".into(), address.into()]);
    args.extend(command.iter().map(Into::into));
    Ok(args)
}

/// The user of the instance's first `ssh-keys` entry (`user:key`).
fn ssh_key_user(instance: &Instance) -> Option<String> {
    let keys = instance
        .instance_metadata
        .iter()
        .find(|item| item.key.as_str() == "ssh-keys")?;
    let (user, _) = keys.value.lines().next()?.split_once(':')?;
    Some(user.trim().to_owned()).filter(|u| !u.is_empty())
}

/// Runs `action`, then waits for its target state if asked.
async fn act(
    session: &Session,
    id: &str,
    action: InstanceAction,
    wait: WaitArgs,
) -> Result<(), Failure> {
    let instance = session.instances().act(id, action).await?;
    let target = match action {
        InstanceAction::Stop => InstanceStatus::Terminated,
        InstanceAction::Suspend => InstanceStatus::Suspended,
        InstanceAction::Start | InstanceAction::Reboot | InstanceAction::Resume => {
            InstanceStatus::Running
        }
    };
    finish(session, &instance, Goal::Status(target), wait).await
}

/// Prints the instance an operation answered, after waiting for `goal` if asked.
async fn finish(
    session: &Session,
    instance: &Instance,
    goal: Goal,
    wait: WaitArgs,
) -> Result<(), Failure> {
    if !wait.wait {
        return emit(session.output, instance);
    }
    let id = instance.id.as_str();
    let last = wait::until(session, id, Some(instance), goal, wait.timeout()?).await?;
    emit(session.output, last.as_ref().unwrap_or(instance))
}

async fn console(session: &Session, id: &str, follow: bool, start: u64) -> Result<(), Failure> {
    let mut from = start;
    loop {
        let client = session.fresh_client().await?;
        let instances = client.instances(&session.region, &session.project);
        let window = instances.serial_port_output(id, from).await?;
        // The console is text; JSON or YAML (with offsets) only when asked for by name.
        let structured = session.output_chosen && session.output != OutputFormat::Table;
        if !follow && structured {
            return emit(session.output, &window);
        }
        if !window.contents.is_empty() {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(window.contents.as_bytes());
            let _ = stdout.flush();
        }
        if !follow {
            return Ok(());
        }
        from = window.next;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn create_request(session: &Session, args: CreateArgs) -> Result<InstanceCreateRequest, Failure> {
    let mut metadata = Vec::new();
    for pair in &args.metadata {
        let (key, value) = key_value(pair, "--metadata")?;
        metadata.push(metadata_item(&key, value)?);
    }
    if !args.ssh_keys.is_empty() {
        let user = args
            .ssh_user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "stratus".into());
        let mut lines = String::new();
        for path in &args.ssh_keys {
            for key in read_file(path, "the ssh key")?.lines() {
                let key = key.trim();
                if !key.is_empty() && !key.starts_with('#') {
                    lines.push_str(&format!("{user}:{key}\n"));
                }
            }
        }
        metadata.push(metadata_item("ssh-keys", lines)?);
    }
    if let Some(path) = &args.user_data {
        metadata.push(metadata_item(
            "user-data",
            read_file(path, "the user-data")?,
        )?);
    }
    let disks = args.image.as_deref().map(|image| {
        vec![Disk {
            size_gb: args.disk_size,
            interface: None,
            source: Some(reference(
                image,
                &format!("/v1/regions/{}/compute/images", session.region),
            )),
            boot: true,
            disk_type: None,
            mode: DiskMode::ReadWrite,
        }]
    });
    if disks.is_none() && args.disk_size.is_some() {
        return Err(Failure::Usage(
            "--disk-size sizes the boot disk made from --image; name an --image".into(),
        ));
    }
    Ok(InstanceCreateRequest {
        id: args
            .id
            .as_deref()
            .map(|id| parse(ResourceId::parse(id), "id"))
            .transpose()?,
        display_name: args.display_name,
        description: args.description,
        labels: (!args.labels.is_empty())
            .then(|| labels(BTreeMap::new(), &args.labels, &[]))
            .transpose()?,
        instance_type: reference(
            &args.instance_type,
            &format!(
                "/v1/regions/{}/zones/{}/instance-types",
                session.region, session.zone
            ),
        ),
        instance_metadata: (!metadata.is_empty()).then_some(metadata),
        hostname: args
            .hostname
            .as_deref()
            .map(|h| parse(stratus_types::Hostname::parse(h), "--hostname"))
            .transpose()?,
        disks,
        nics: (args.network.is_some() || args.ip.is_some() || args.external_address.is_some())
            .then(|| {
                vec![stratus_types::Nic {
                    network: args.network.as_deref().map(|n| {
                        reference(
                            n,
                            &format!(
                                "/v1/regions/{}/projects/{}/compute/networks",
                                session.region, session.project
                            ),
                        )
                    }),
                    ipv4_address: args.ip.clone(),
                    external_address: args.external_address.as_deref().map(|a| {
                        reference(
                            a,
                            &format!(
                                "/v1/regions/{}/projects/{}/compute/addresses",
                                session.region, session.project
                            ),
                        )
                    }),
                    ..stratus_types::Nic::default()
                }]
            }),
        gpus: None,
    })
}

fn update_request(current: &Instance, args: &UpdateArgs) -> Result<InstanceUpdateRequest, Failure> {
    let mut request = InstanceUpdateRequest {
        display_name: args.display_name.clone(),
        description: args.description.clone(),
        ..InstanceUpdateRequest::default()
    };
    if !args.labels.is_empty() || !args.remove_labels.is_empty() {
        request.labels = Some(labels(
            current.labels.as_map().clone(),
            &args.labels,
            &args.remove_labels,
        )?);
    }
    if !args.metadata.is_empty() || !args.remove_metadata.is_empty() {
        let mut items = current.instance_metadata.clone();
        items.retain(|item| !args.remove_metadata.iter().any(|k| k == item.key.as_str()));
        for pair in &args.metadata {
            let (key, value) = key_value(pair, "--metadata")?;
            items.retain(|item| item.key.as_str() != key);
            items.push(metadata_item(&key, value)?);
        }
        request.instance_metadata = Some(items);
    }
    if request == InstanceUpdateRequest::default() {
        return Err(Failure::Usage(
            "nothing to change: give --display-name, --description, --label, --remove-label, --metadata or --remove-metadata".into(),
        ));
    }
    Ok(request)
}

/// A reference given as an id becomes `collection/id`; a URI is taken as it is.
fn reference(text: &str, collection: &str) -> String {
    if text.starts_with('/') {
        text.to_owned()
    } else {
        format!("{collection}/{text}")
    }
}

fn key_value(pair: &str, flag: &str) -> Result<(String, String), Failure> {
    pair.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| Failure::Usage(format!("{flag} {pair:?} is not KEY=VALUE")))
}

fn labels(
    mut map: BTreeMap<String, String>,
    set: &[String],
    remove: &[String],
) -> Result<Labels, Failure> {
    for key in remove {
        map.remove(key);
    }
    for pair in set {
        let (key, value) = key_value(pair, "--label")?;
        map.insert(key, value);
    }
    parse(Labels::parse(map), "--label")
}

fn metadata_item(key: &str, value: String) -> Result<MetadataItem, Failure> {
    Ok(MetadataItem {
        key: parse(MetadataKey::parse(key), "metadata key")?,
        value,
    })
}

fn parse<T>(parsed: Result<T, String>, what: &str) -> Result<T, Failure> {
    parsed.map_err(|e| Failure::Usage(format!("invalid {what}: {e}")))
}

impl Tabular for Vec<Instance> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    i.lifecycle.status.as_str().to_owned(),
                    last_segment(&i.instance_type).to_owned(),
                    i.nics
                        .first()
                        .and_then(|n| n.ipv4_address.clone())
                        .unwrap_or_default(),
                    i.hostname.clone(),
                    when(&i.created_at),
                    i.lifecycle.status_message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        (
            vec![
                "ID", "STATUS", "TYPE", "ADDRESS", "HOSTNAME", "CREATED", "MESSAGE",
            ],
            rows,
        )
    }
}

impl Tabular for Instance {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let labels = self
            .labels
            .as_map()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let metadata = self
            .instance_metadata
            .iter()
            .map(|m| m.key.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let disks = self
            .disks
            .iter()
            .map(|d| {
                format!(
                    "{}{} GB{}",
                    if d.boot { "boot " } else { "" },
                    d.size_gb.map(|s| s.to_string()).unwrap_or("?".into()),
                    d.source
                        .as_deref()
                        .map(|s| format!(" from {}", last_segment(s)))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let nics = self
            .nics
            .iter()
            .map(|n| {
                format!(
                    "{} in {}{}{}",
                    n.ipv4_address.as_deref().unwrap_or("?"),
                    n.network.as_deref().map(last_segment).unwrap_or("?"),
                    n.mac_address
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default(),
                    n.external_ipv4_address
                        .as_deref()
                        .map(|e| format!(", external {e}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        fields(vec![
            ("id", self.id.to_string()),
            ("status", self.lifecycle.status.as_str().to_owned()),
            (
                "message",
                self.lifecycle.status_message.clone().unwrap_or_default(),
            ),
            ("type", last_segment(&self.instance_type).to_owned()),
            ("hostname", self.hostname.clone()),
            ("display name", self.display_name.clone()),
            ("description", self.description.clone()),
            ("labels", labels),
            ("metadata", metadata),
            ("disks", disks),
            ("addresses", nics),
            ("created", when(&self.created_at)),
            ("updated", when(&self.updated_at)),
            ("self link", self.self_link.clone()),
        ])
    }
}

impl Tabular for stratus_types::SerialPortOutput {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (Vec::new(), vec![vec![self.contents.clone()]])
    }
}

#[cfg(test)]
mod tests {
    use super::ssh_args;
    use std::path::Path;

    #[test]
    fn instance_data_never_becomes_an_ssh_option() {
        let known = Path::new("/k");
        // Any project member can write these into the instance's ssh-keys.
        for user in ["-oProxyCommand=touch /tmp/pwned", "a b", "root@evil", ""] {
            assert!(
                ssh_args(user, "10.0.0.2", "u", known, None, &[]).is_err(),
                "{user}"
            );
        }
        assert!(ssh_args("debian", "-oProxyCommand=x", "u", known, None, &[]).is_err());
        let args = ssh_args(
            "debian",
            "198.51.100.2",
            "u",
            known,
            None,
            &["uname".into()],
        )
        .unwrap();
        let tail: Vec<_> = args[args.len() - 5..]
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect();
        assert_eq!(tail, ["-l", "debian", "--", "198.51.100.2", "uname"]);
    }
}
