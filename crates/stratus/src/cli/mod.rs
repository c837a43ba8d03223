//! The command-line client: `stratus login`, `stratus instances …` and the other nouns.
//!
//! The commands are shaped like the CLIs people like (gcloud, `gh`): a noun, a verb, an id;
//! defaults for project, region and zone from the profile `stratus login` wrote, each
//! overridable per call; `-o table|json|yaml`, with a table on a terminal and JSON when the
//! output is piped, so `stratus instances list | jq` just works. Everything goes through the
//! typed `stratus-client`, so the CLI speaks exactly the API's types.
//!
//! Long operations can `--wait`: the command follows the instance's lifecycle, showing every
//! status change (a spinner on a terminal, one line per change otherwise), and ends when the
//! goal is reached, when the instance settles somewhere else (failed), or at `--timeout`.
//!
//! Exit codes tell a script what happened without parsing text:
//! 0 success; 1 the API refused the request or the endpoint could not be reached (one line on
//! standard error with the message, reason and field); 2 usage error (bad flags, missing
//! profile, unreadable file); 3 `--wait` timed out; 4 the instance settled in another state than
//! the one waited for (for example TERMINATED while waiting for RUNNING).

mod api_keys;
mod audit;
mod catalog;
mod hosts;
mod instances;
mod networks;
mod output;
mod profiles;
mod projects;
mod quotas;
mod servers;
mod service_accounts;
mod wait;

use clap::{Args, Subcommand};
use output::OutputFormat;
use std::io::Write;
use std::path::PathBuf;

/// Exit code of an API error or an unreachable endpoint.
pub const EXIT_API_ERROR: i32 = 1;
/// Exit code of a usage error (clap's own, too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code of a `--wait` that timed out.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit code of a `--wait` whose instance settled in another state.
pub const EXIT_FAILED: i32 = 4;

const EXIT_CODES_HELP: &str = "Exit codes: 0 success, 1 API error or endpoint unreachable, 2 usage error, \
3 --wait timed out, 4 the instance ended in another state than the one waited for.";

/// The client commands of the `stratus` binary.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Sign in to a region: exchange an API key (or a service account's client credentials)
    /// for a token and save both in a profile.
    #[command(after_help = EXIT_CODES_HELP)]
    Login(LoginArgs),
    /// Revoke the profile's token and forget the profile, its key and its token.
    Logout {
        /// The profile (default: the current one).
        #[arg(long, env = "STRATUS_PROFILE")]
        profile: Option<String>,
    },
    /// Show, choose and change saved profiles.
    #[command(subcommand)]
    Profiles(profiles_cmd::ProfilesCommand),
    /// Create, inspect, change, start, stop and delete instances.
    #[command(after_help = EXIT_CODES_HELP)]
    Instances {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: instances::InstancesCommand,
    },
    /// The sizes of instance a zone offers.
    #[command(name = "instance-types", after_help = EXIT_CODES_HELP)]
    InstanceTypes {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: catalog::InstanceTypesCommand,
    },
    /// The disk images of a region; registering and deleting them needs an administrator.
    #[command(after_help = EXIT_CODES_HELP)]
    Images {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: catalog::ImagesCommand,
    },
    /// The project's networks (with their subnets): create, list, delete.
    #[command(after_help = EXIT_CODES_HELP)]
    Networks {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: networks::NetworksCommand,
    },
    /// The project's reserved addresses: internal ones in a network, external ones.
    #[command(after_help = EXIT_CODES_HELP)]
    Addresses {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: networks::AddressesCommand,
    },
    /// The hosts of a zone: health, capacity, cordon and drain (the region's operators).
    #[command(after_help = EXIT_CODES_HELP)]
    Hosts {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: hosts::HostsCommand,
    },
    /// Bare-metal servers: register, provision, power, logs (the region's operators).
    #[command(after_help = EXIT_CODES_HELP)]
    Servers {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: servers::ServersCommand,
    },
    /// The projects you can see, and creating and deleting them.
    #[command(after_help = EXIT_CODES_HELP)]
    Projects {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: projects::ProjectsCommand,
    },
    /// Your API keys: create, rotate, disable and delete them.
    #[command(name = "api-keys", after_help = EXIT_CODES_HELP)]
    ApiKeys {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: api_keys::ApiKeysCommand,
    },
    /// The organization's service accounts and their client credentials (owners and admins).
    #[command(name = "service-accounts", after_help = EXIT_CODES_HELP)]
    ServiceAccounts {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: service_accounts::ServiceAccountsCommand,
    },
    /// An organization's quotas with their usage; operators set them.
    #[command(after_help = EXIT_CODES_HELP)]
    Quotas {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: quotas::QuotasCommand,
    },
    /// The audit trail: who changed what, when (owners and admins).
    #[command(after_help = EXIT_CODES_HELP)]
    Audit {
        #[command(flatten)]
        scope: Scope,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print a shell completion script, e.g. `stratus completions bash > /etc/bash_completion.d/stratus`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `stratus login`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("credential").required(true).args(["api_key_file", "client_id"])))]
pub struct LoginArgs {
    /// The region's API, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    endpoint: String,
    /// File holding the API key (serve writes `admin-api-key` into its data directory).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Sign in as a service account with this client id (`stratus service-accounts get`
    /// shows it) instead of with an API key; needs --client-secret-file.
    #[arg(long, requires = "client_secret_file", conflicts_with = "api_key_file")]
    client_id: Option<String>,
    /// File holding one of the service account's client secrets
    /// (`stratus service-accounts credentials create ACCOUNT --secret-file FILE` writes it).
    #[arg(long, value_name = "FILE", requires = "client_id")]
    client_secret_file: Option<PathBuf>,
    /// Name of the profile to write (default: `default`); it becomes the current profile.
    #[arg(long, env = "STRATUS_PROFILE")]
    profile: Option<String>,
    /// Default project of the profile (default: `default`).
    #[arg(long)]
    project: Option<String>,
    /// Default region (default: the first the endpoint serves).
    #[arg(long)]
    region: Option<String>,
    /// Default zone (default: the region's first).
    #[arg(long)]
    zone: Option<String>,
}

/// Options every resource command takes: which profile, and overrides of its defaults.
#[derive(Args, Clone)]
#[command(next_help_heading = "Profile, scope and output")]
pub struct Scope {
    /// Profile to use (default: the current one).
    #[arg(long, global = true, env = "STRATUS_PROFILE")]
    profile: Option<String>,
    /// Project (default: the profile's).
    #[arg(long, global = true, env = "STRATUS_PROJECT")]
    project: Option<String>,
    /// Region (default: the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Zone (default: the profile's).
    #[arg(long, global = true)]
    zone: Option<String>,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(short = 'o', long, global = true, value_enum)]
    output: Option<OutputFormat>,
}

/// Why a command failed; each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input on this side: flags, files, profiles.
    Usage(String),
    /// The API said no, or could not be reached.
    Client(stratus_client::Error),
    /// A `--wait` ran out of time.
    Timeout(String),
    /// A `--wait` saw the instance settle in another state.
    Failed(String),
}

impl From<stratus_client::Error> for Failure {
    fn from(error: stratus_client::Error) -> Self {
        match error {
            stratus_client::Error::InvalidEndpoint(_) => Failure::Usage(error.to_string()),
            error => Failure::Client(error),
        }
    }
}

impl Failure {
    fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Client(_) => EXIT_API_ERROR,
            Failure::Timeout(_) => EXIT_TIMEOUT,
            Failure::Failed(_) => EXIT_FAILED,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Timeout(m) | Failure::Failed(m) => f.write_str(m),
            Failure::Client(e) => write!(f, "{e}"),
        }
    }
}

/// The resolved context of a resource command: a client with a fresh token, and where to act.
pub struct Session {
    /// A client whose token was valid for at least a minute when the command started; long
    /// loops use [`Session::fresh_client`] instead.
    pub client: stratus_client::Client,
    profile_name: String,
    /// Unix seconds at which the token of `client` (or of the latest renewal) expires, and the
    /// latest renewed client.
    renewed: std::sync::Mutex<(i64, stratus_client::Client)>,
    pub project: String,
    pub region: String,
    pub zone: String,
    pub output: OutputFormat,
    /// Whether `-o` was given (commands whose natural output is text honour only an explicit one).
    pub output_chosen: bool,
}

impl Session {
    async fn open(scope: &Scope) -> Result<Self, Failure> {
        let (name, profile, client) = profiles::authenticated(scope.profile.as_deref()).await?;
        Ok(Self {
            renewed: std::sync::Mutex::new((
                profile.token_expires_at.unwrap_or_default(),
                client.clone(),
            )),
            profile_name: name,
            client,
            project: scope.project.clone().unwrap_or(profile.project),
            region: scope.region.clone().unwrap_or(profile.region),
            zone: scope.zone.clone().unwrap_or(profile.zone),
            output: scope.output.unwrap_or_else(OutputFormat::for_stdout),
            output_chosen: scope.output.is_some(),
        })
    }

    fn instances(&self) -> stratus_client::Instances<'_> {
        self.client.instances(&self.region, &self.project)
    }

    /// A client whose token is valid for at least another minute, renewed from the profile's
    /// key when needed: for loops (`--wait`, `console --follow`) that may outlive a token.
    async fn fresh_client(&self) -> Result<stratus_client::Client, Failure> {
        let (expires_at, client) = self
            .renewed
            .lock()
            .map_err(|_| Failure::Usage("internal: session lock poisoned".into()))?
            .clone();
        if !profiles::expires_soon(expires_at) {
            return Ok(client);
        }
        let (_, profile, client) = profiles::authenticated(Some(&self.profile_name)).await?;
        if let Ok(mut renewed) = self.renewed.lock() {
            *renewed = (profile.token_expires_at.unwrap_or_default(), client.clone());
        }
        Ok(client)
    }
}

impl ClientCommand {
    /// Runs the command and answers the process's exit code; `root` is the whole CLI, for
    /// completions.
    pub async fn run(self, root: clap::Command) -> i32 {
        match self.dispatch(root).await {
            Ok(()) => 0,
            Err(failure) => {
                let _ = writeln!(std::io::stderr(), "error: {failure}");
                failure.exit_code()
            }
        }
    }

    async fn dispatch(self, mut root: clap::Command) -> Result<(), Failure> {
        match self {
            ClientCommand::Login(args) => profiles_cmd::login(args).await,
            ClientCommand::Logout { profile } => profiles_cmd::logout(profile.as_deref()).await,
            ClientCommand::Profiles(command) => command.run(),
            ClientCommand::Instances { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::InstanceTypes { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Images { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Projects { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::ApiKeys { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::ServiceAccounts { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Networks { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Addresses { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Hosts { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Servers { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Quotas { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Audit { scope, command } => {
                command.run(&Session::open(&scope).await?).await
            }
            ClientCommand::Completions { shell } => {
                clap_complete::generate(shell, &mut root, "stratus", &mut std::io::stdout());
                Ok(())
            }
        }
    }
}

mod profiles_cmd;

/// Writes `text` to standard output; a closed pipe (`| head`) is not an error.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

/// Reads a file named on the command line.
fn read_file(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {what} {}: {e}", path.display())))
}
