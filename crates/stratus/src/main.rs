//! `stratus`: serve a region, migrate its store, print its OpenAPI document.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use stratus::{Config, Region};

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "A self-hosted compute cloud serving the k0rdent compute API"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "STRATUS_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Start a whole region: API, reconciler and a local host, with state in DATA_DIR.
    Serve {
        /// Directory of the region's state (created if missing).
        #[arg(long, default_value = "stratus-data", env = "STRATUS_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to listen on (default 127.0.0.1:8080, or `api.listen` of the config).
        #[arg(long, env = "STRATUS_LISTEN")]
        listen: Option<String>,
        /// TOML configuration file.
        #[arg(long, env = "STRATUS_CONFIG")]
        config: Option<PathBuf>,
        /// `postgres://…` URL of the region's database, shared by all replicas (default:
        /// `database.url` of the config, else the embedded store in DATA_DIR).
        #[arg(long, env = "STRATUS_DATABASE_URL")]
        database_url: Option<String>,
        /// Run no host in this process: a control-plane replica only; hosts join with
        /// `stratus agent`.
        #[arg(long)]
        no_local_agent: bool,
    },
    /// Run a host agent that joins an existing region: it registers this host, pulls the
    /// instances placed on it and runs them with the chosen driver.
    Agent {
        /// URLs of the region's control plane (comma-separated; tried in turn).
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            env = "STRATUS_CONTROL_PLANE"
        )]
        control_plane: Vec<String>,
        /// File holding the region's host credential (`host-credential` in serve's data dir).
        #[arg(long, env = "STRATUS_HOST_CREDENTIAL_FILE")]
        credential_file: PathBuf,
        /// Zone of this host.
        #[arg(long)]
        zone: Option<String>,
        /// `auto` (QEMU where it runs, else the simulator), `qemu` or `sim`.
        #[arg(long)]
        driver: Option<String>,
        /// Name of this host (default: `[host] name` of the config, else the machine's hostname).
        #[arg(long)]
        name: Option<String>,
        /// Directory of this host's VMs.
        #[arg(long, default_value = "stratus-agent-data", env = "STRATUS_DATA_DIR")]
        data_dir: PathBuf,
        /// TOML configuration: the `[host]`, `[qemu]`, `[sim]`, `[agent]` sections and the
        /// catalog's image files.
        #[arg(long, env = "STRATUS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the store in DATA_DIR (or the database of `--database-url`), then exit.
    Migrate {
        #[arg(long, default_value = "stratus-data", env = "STRATUS_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "STRATUS_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Move a region's state between stores.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Connect standard input and output to a VM's metadata socket (run by QEMU for each
    /// guest connection to 169.254.169.254).
    #[command(hide = true)]
    MetadataProxy { socket: PathBuf },
    /// The client: `login`, `instances`, `instance-types`, `images`, `projects`, `completions`.
    #[command(flatten)]
    Client(Box<stratus::cli::ClientCommand>),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy every row of a stopped region into an empty database: from the embedded store of
    /// a data directory to PostgreSQL, or back.
    Copy {
        /// The source: a data directory of `serve`, or a `postgres://` URL.
        #[arg(long)]
        from: String,
        /// The target: a `postgres://` URL of an empty database, or a data directory.
        #[arg(long)]
        to: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::MetadataProxy { socket } = &cli.command {
        // No logging and no error text: standard output and error belong to the guest's
        // connection.
        let code = i32::from(stratus::metadata_proxy::run(socket).await.is_err());
        std::process::exit(code);
    }
    if let Command::Client(command) = cli.command {
        // No logging: the client reports on standard error itself, and its exit code matters.
        std::process::exit(command.run(Cli::command()).await);
    }
    stratus::allocator::return_freed_memory_at_once();
    // Traces are exported by the long-running roles, as their config file asks.
    let (config_file, service) = match &cli.command {
        Command::Serve { config, .. } => (config.as_deref(), "stratus"),
        Command::Agent { config, .. } => (config.as_deref(), "stratus-agent"),
        _ => (None, "stratus"),
    };
    let otlp_endpoint = match config_file {
        Some(path) => Config::load(path)?.telemetry.otlp_endpoint,
        None => String::new(),
    };
    let format = match cli.log_format {
        LogFormat::Text => stratus::telemetry::LogFormat::Text,
        LogFormat::Json => stratus::telemetry::LogFormat::Json,
    };
    let traces = stratus::telemetry::init_logging(format, &otlp_endpoint, service)?;
    let outcome = run(cli.command).await;
    stratus::telemetry::shutdown_traces(traces).await;
    outcome
}

/// Runs a server-side command (everything but the client and the metadata proxy).
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            data_dir,
            listen,
            config,
            database_url,
            no_local_agent,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(url) = database_url {
                anyhow::ensure!(
                    stratus::db::is_database_url(&url),
                    "--database-url must be a postgres:// URL"
                );
                config.database.url = url;
            }
            if no_local_agent {
                config.host.enabled = false;
            }
            let listen = listen.unwrap_or_else(|| config.api.listen.clone());
            let region = Region::start(&data_dir, &listen, config).await?;
            // The banner is for whoever started the server; a closed stdout must not stop it.
            let _ = writeln!(
                std::io::stdout(),
                "Stratus region {} serving on http://{}\nAdmin API key: {}",
                region.app.region(),
                region.addr,
                region.admin_key_path.display()
            );
            region.serve_until_signal().await
        }
        Command::Agent {
            control_plane,
            credential_file,
            zone,
            driver,
            name,
            data_dir,
            config,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(zone) = zone {
                config.host.zone = zone;
            }
            if let Some(driver) = driver {
                anyhow::ensure!(
                    matches!(driver.as_str(), "auto" | "sim" | "qemu"),
                    "--driver is {driver:?}; use auto, qemu or sim"
                );
                config.host.driver = driver;
            }
            stratus::host_setup::resolve(&mut config, &data_dir, false);
            config.host.name = match name {
                Some(name) => name,
                None if config.host.name != stratus::config::HostSection::default().name => {
                    config.host.name.clone()
                }
                None => std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "host".into()),
            };
            let credential = std::fs::read_to_string(&credential_file)
                .with_context(|| format!("reading {}", credential_file.display()))?;
            stratus::private_files::make_private(&data_dir)
                .with_context(|| format!("making {} private", data_dir.display()))?;
            let protected = stratus::region::addresses_of_urls(&control_plane);
            let control_plane: std::sync::Arc<dyn stratus_agent::ControlPlane> =
                std::sync::Arc::new(stratus::remote_agent::HttpControlPlane::new(
                    control_plane,
                    credential.trim().to_owned(),
                )?);
            let driver =
                stratus::region::host_driver(&data_dir, &config, control_plane.clone(), protected)
                    .await?;
            let registration = stratus::region::host_registration(&config, driver.as_ref());
            let agent = stratus_agent::Agent::new(
                control_plane,
                driver,
                registration,
                stratus::region::agent_config(&config),
            );
            let cancel = tokio_util::sync::CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            });
            if !config.telemetry.metrics_listen.is_empty() {
                stratus::telemetry::serve_metrics(
                    &config.telemetry.metrics_listen,
                    None,
                    cancel.clone(),
                )
                .await?;
            }
            agent.run(cancel).await;
            Ok(())
        }
        Command::Migrate {
            data_dir,
            database_url,
        } => {
            let url = database_url.unwrap_or_default();
            stratus::db::open_region_store(&data_dir, &url).await?;
            if url.is_empty() {
                println!("store in {} is up to date", data_dir.display());
            } else {
                println!("database {} is up to date", stratus::db::redact(&url));
            }
            Ok(())
        }
        Command::Db {
            command: DbCommand::Copy { from, to },
        } => {
            let copied = stratus::db::copy(&from, &to).await?;
            let total: u64 = copied.values().sum();
            println!(
                "copied {total} rows from {} to {}:",
                stratus::db::redact(&from),
                stratus::db::redact(&to)
            );
            for (table, rows) in copied {
                println!("  {table:<16} {rows}");
            }
            Ok(())
        }
        Command::Openapi => {
            print!("{}", stratus_api::document_json());
            Ok(())
        }
        Command::MetadataProxy { .. } | Command::Client(_) => {
            unreachable!("handled before logging starts")
        }
    }
}
