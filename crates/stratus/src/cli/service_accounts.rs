//! `stratus service-accounts …`: the organization's service accounts and their client
//! credentials.

use super::api_keys::{KeyScope, keep_secret, status_change};
use super::output::{Tabular, emit, fields, when};
use super::{Failure, Session};
use clap::Subcommand;
use std::path::PathBuf;
use stratus_types::auth::{
    Credential, CredentialCreateRequest, ServiceAccount, ServiceAccountCreateRequest,
    ServiceAccountUpdateRequest,
};

/// `stratus service-accounts …`.
#[derive(Subcommand)]
pub enum ServiceAccountsCommand {
    /// List the organization's service accounts (owners and admins).
    List,
    /// Show one service account, with the client id it signs in with.
    Get { id: String },
    /// Make a service account; give it a credential with `credentials create`.
    Create {
        /// A role of the account (repeatable): owner, admin, member for an organization;
        /// admin, member, viewer for a project. Never more than you hold.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// What the account acts on (default: organization).
        #[arg(long = "scope", value_enum)]
        account_scope: Option<KeyScope>,
        /// The organization or project id (default: your organization).
        #[arg(long)]
        scope_id: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a service account's name, description or roles, or disable and enable it.
    Update {
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The account's roles, replacing the current ones (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Tokens of a disabled account stop working.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete a service account and its credentials.
    Delete { id: String },
    /// The client secrets of a service account (at most 5 active).
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

/// `stratus service-accounts credentials …`.
#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// List a service account's credentials.
    List { account: String },
    /// Show one credential (never its secret).
    Get { account: String, id: String },
    /// Make a client secret; it is shown once (or written to --secret-file).
    Create {
        account: String,
        /// How long the credential works, e.g. 30m, 12h, 90d (default: until deleted).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
        expires_in: Option<chrono::Duration>,
        /// When the credential stops working, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Write the secret to this file (mode 0600) instead of printing it; then
        /// `stratus login --client-id ID --client-secret-file FILE` signs in with it.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Delete a credential: it mints no more tokens.
    Delete { account: String, id: String },
}

impl ServiceAccountsCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let client = &session.client;
        match self {
            Self::List => emit(session.output, &client.list_all_service_accounts().await?),
            Self::Get { id } => emit(session.output, &client.get_service_account(&id).await?),
            Self::Create {
                roles,
                account_scope,
                scope_id,
                display_name,
                description,
            } => {
                let request = ServiceAccountCreateRequest {
                    display_name: display_name.unwrap_or_default(),
                    description: description.unwrap_or_default(),
                    scope: account_scope.map(|s| s.as_str().into()),
                    scope_id,
                    roles,
                };
                emit(
                    session.output,
                    &client.create_service_account(&request).await?,
                )
            }
            Self::Update {
                id,
                display_name,
                description,
                roles,
                disable,
                enable,
            } => {
                let request = ServiceAccountUpdateRequest {
                    display_name,
                    description,
                    roles: (!roles.is_empty()).then_some(roles),
                    status: status_change(disable, enable),
                };
                if request.display_name.is_none()
                    && request.description.is_none()
                    && request.roles.is_none()
                    && request.status.is_none()
                {
                    return Err(Failure::Usage(
                        "nothing to change: give --display-name, --description, --role, --disable or --enable"
                            .into(),
                    ));
                }
                emit(
                    session.output,
                    &client.update_service_account(&id, &request).await?,
                )
            }
            Self::Delete { id } => {
                client.delete_service_account(&id).await?;
                eprintln!("service account {id} and its credentials deleted");
                Ok(())
            }
            Self::Credentials(command) => command.run(session).await,
        }
    }
}

impl CredentialsCommand {
    async fn run(self, session: &Session) -> Result<(), Failure> {
        let client = &session.client;
        match self {
            Self::List { account } => {
                emit(session.output, &client.list_credentials(&account).await?)
            }
            Self::Get { account, id } => {
                emit(session.output, &client.get_credential(&account, &id).await?)
            }
            Self::Create {
                account,
                expires_in,
                expires_at,
                secret_file,
            } => {
                let expires_at = match expires_in {
                    Some(duration) => Some(chrono::Utc::now() + duration),
                    None => expires_at,
                };
                let request = CredentialCreateRequest { expires_at };
                let credential = client.create_credential(&account, &request).await?;
                show_with_secret(session, credential, secret_file)
            }
            Self::Delete { account, id } => {
                client.delete_credential(&account, &id).await?;
                eprintln!("credential {id} of service account {account} deleted");
                Ok(())
            }
        }
    }
}

/// Prints a credential whose answer holds its secret: into `secret_file` when given (and left
/// out of the output, with how to sign in with it), else in the output, shown this once.
fn show_with_secret(
    session: &Session,
    mut credential: Credential,
    secret_file: Option<PathBuf>,
) -> Result<(), Failure> {
    credential.client_secret = keep_secret(
        credential.client_secret.take(),
        secret_file.as_deref(),
        &format!("credential {}", credential.id),
        "create another credential to get a new one",
    )?;
    if let Some(path) = secret_file.filter(|_| credential.client_secret.is_none()) {
        eprintln!(
            "Sign in with it: stratus login --endpoint URL --client-id {} --client-secret-file {}",
            credential.client_id,
            path.display()
        );
    }
    emit(session.output, &credential)
}

/// A duration such as `90s`, `30m`, `12h`, `90d`, `2w` or `1h30m`.
fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("{text:?} is not a duration: use e.g. 30m, 12h, 90d or 1h30m");
    let mut total = chrono::Duration::zero();
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let part = match c {
            's' => chrono::Duration::try_seconds(n),
            'm' => chrono::Duration::try_minutes(n),
            'h' => chrono::Duration::try_hours(n),
            'd' => chrono::Duration::try_days(n),
            'w' => chrono::Duration::try_weeks(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    if !number.is_empty() || total <= chrono::Duration::zero() {
        return Err(bad());
    }
    Ok(total)
}

impl Tabular for Vec<ServiceAccount> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.status.clone(),
                    format!("{} {}", a.scope, a.scope_id),
                    a.roles.join(","),
                    a.display_name.clone(),
                    a.client_id.clone(),
                ]
            })
            .collect();
        (
            vec!["ID", "STATUS", "SCOPE", "ROLES", "NAME", "CLIENT ID"],
            rows,
        )
    }
}

impl Tabular for ServiceAccount {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.clone()),
            ("client id", self.client_id.clone()),
            ("status", self.status.clone()),
            ("scope", format!("{} {}", self.scope, self.scope_id)),
            ("roles", self.roles.join(", ")),
            ("display name", self.display_name.clone()),
            ("description", self.description.clone()),
            ("created by", self.created_by.clone()),
            ("created", when(&self.created_at)),
            ("updated", when(&self.updated_at)),
        ])
    }
}

impl Tabular for Vec<Credential> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.status.clone(),
                    when(&c.created_at),
                    c.expires_at
                        .as_ref()
                        .map(when)
                        .unwrap_or_else(|| "never".into()),
                    c.last_used_at.as_ref().map(when).unwrap_or_default(),
                ]
            })
            .collect();
        (
            vec!["ID", "STATUS", "CREATED", "EXPIRES", "LAST USED"],
            rows,
        )
    }
}

impl Tabular for Credential {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.clone()),
            ("client id", self.client_id.clone()),
            (
                "client secret",
                self.client_secret.clone().unwrap_or_default(),
            ),
            ("service account", self.service_account_id.clone()),
            ("status", self.status.clone()),
            ("created", when(&self.created_at)),
            (
                "expires",
                self.expires_at
                    .as_ref()
                    .map(when)
                    .unwrap_or_else(|| "never".into()),
            ),
            (
                "last used",
                self.last_used_at.as_ref().map(when).unwrap_or_default(),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_add_their_parts_and_refuse_the_rest() {
        assert_eq!(parse_duration("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            chrono::Duration::minutes(90)
        );
        for bad in ["", "12", "0s", "3x", "h", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
