//! `stratus api-keys …`: the caller's API keys.

use super::output::{Tabular, emit, fields, when};
use super::profiles::write_private;
use super::{Failure, Session};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use stratus_types::auth::{ApiKey, ApiKeyCreateRequest, ApiKeyUpdateRequest};

/// `stratus api-keys …`.
#[derive(Subcommand)]
pub enum ApiKeysCommand {
    /// List your API keys.
    List,
    /// Show one API key.
    Get { id: String },
    /// Create an API key; its secret is shown once (or written to --secret-file).
    Create {
        /// A role of the key (repeatable): owner, admin, member for an organization; admin,
        /// member, viewer for a project. Never more than you hold.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// What the key acts on (default: organization).
        #[arg(long = "scope", value_enum)]
        key_scope: Option<KeyScope>,
        /// The organization or project id (default: your organization).
        #[arg(long)]
        scope_id: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Write the secret to this file (mode 0600) instead of printing it; then
        /// `stratus login --api-key-file FILE` signs in with the key.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Change an API key's name or roles, or disable and enable it.
    Update {
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        /// The key's roles, replacing the current ones (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete an API key; tokens minted from it stop working.
    Delete { id: String },
    /// Give an API key a new secret.
    Rotate {
        id: String,
        /// Seconds the previous secret keeps working (0 to 300).
        #[arg(long, default_value_t = 0)]
        grace_period: u32,
        /// Write the new secret to this file (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
}

/// `--scope` of an API key or a service account.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyScope {
    Organization,
    Project,
}

impl KeyScope {
    /// The API's name of the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Organization => "organization",
            KeyScope::Project => "project",
        }
    }
}

impl ApiKeysCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let client = &session.client;
        match self {
            ApiKeysCommand::List => emit(session.output, &client.list_all_api_keys().await?),
            ApiKeysCommand::Get { id } => emit(session.output, &client.get_api_key(&id).await?),
            ApiKeysCommand::Create {
                roles,
                key_scope,
                scope_id,
                display_name,
                secret_file,
            } => {
                let request = ApiKeyCreateRequest {
                    display_name: display_name.unwrap_or_default(),
                    scope: key_scope.map(|s| s.as_str().into()),
                    scope_id,
                    roles,
                };
                let key = client.create_api_key(&request).await?;
                show_with_secret(session, key, secret_file)
            }
            ApiKeysCommand::Update {
                id,
                display_name,
                roles,
                disable,
                enable,
            } => {
                let request = ApiKeyUpdateRequest {
                    display_name,
                    roles: (!roles.is_empty()).then_some(roles),
                    status: status_change(disable, enable),
                };
                if request.display_name.is_none()
                    && request.roles.is_none()
                    && request.status.is_none()
                {
                    return Err(Failure::Usage(
                        "nothing to change: give --display-name, --role, --disable or --enable"
                            .into(),
                    ));
                }
                emit(session.output, &client.update_api_key(&id, &request).await?)
            }
            ApiKeysCommand::Delete { id } => {
                client.delete_api_key(&id).await?;
                eprintln!("API key {id} deleted");
                Ok(())
            }
            ApiKeysCommand::Rotate {
                id,
                grace_period,
                secret_file,
            } => {
                let key = client.rotate_api_key(&id, grace_period).await?;
                show_with_secret(session, key, secret_file)
            }
        }
    }
}

/// Prints a key whose answer holds its secret: into `secret_file` when given (and left out of
/// the output), else in the output with a reminder that it is shown once.
fn show_with_secret(
    session: &Session,
    mut key: ApiKey,
    secret_file: Option<PathBuf>,
) -> Result<(), Failure> {
    key.secret = keep_secret(
        key.secret.take(),
        secret_file.as_deref(),
        &format!("API key {}", key.id),
        "rotate the key to get a new one",
    )?;
    emit(session.output, &key)
}

/// Puts a secret shown once where it belongs: into `secret_file` (mode 0600) when given,
/// answering `None` so that it stays out of the output; else it is answered back for the
/// output, with a reminder on standard error that it is not shown again (`again` says how to
/// get another). `what` names the secret's owner in messages, never the secret.
pub(super) fn keep_secret(
    secret: Option<String>,
    secret_file: Option<&Path>,
    what: &str,
    again: &str,
) -> Result<Option<String>, Failure> {
    match (secret_file, secret) {
        (Some(path), Some(secret)) => {
            write_private(path, format!("{secret}\n").as_bytes())
                .map_err(|e| Failure::Usage(format!("writing {}: {e}", path.display())))?;
            eprintln!("The secret of {what} is in {}.", path.display());
            Ok(None)
        }
        (_, secret) => {
            eprintln!("Keep the secret now: it is not shown again ({again}).");
            Ok(secret)
        }
    }
}

/// The status `--disable` / `--enable` ask for, if either.
pub(super) fn status_change(disable: bool, enable: bool) -> Option<String> {
    match (disable, enable) {
        (true, _) => Some("disabled".into()),
        (_, true) => Some("active".into()),
        _ => None,
    }
}

impl Tabular for Vec<ApiKey> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.status.clone(),
                    format!("{} {}", k.scope, k.scope_id),
                    k.roles.join(","),
                    k.display_name.clone(),
                    k.last_used_at.as_ref().map(when).unwrap_or_default(),
                ]
            })
            .collect();
        (
            vec!["ID", "STATUS", "SCOPE", "ROLES", "NAME", "LAST USED"],
            rows,
        )
    }
}

impl Tabular for ApiKey {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.clone()),
            ("secret", self.secret.clone().unwrap_or_default()),
            ("status", self.status.clone()),
            ("scope", format!("{} {}", self.scope, self.scope_id)),
            ("roles", self.roles.join(", ")),
            ("display name", self.display_name.clone()),
            ("created by", self.created_by.clone()),
            ("created", when(&self.created_at)),
            (
                "last used",
                self.last_used_at.as_ref().map(when).unwrap_or_default(),
            ),
            (
                "last rotated",
                self.last_rotated_at.as_ref().map(when).unwrap_or_default(),
            ),
        ])
    }
}
