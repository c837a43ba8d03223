//! Named profiles: where a region is, how to get a token for it, and the defaults commands use.
//!
//! `stratus login` writes a profile into `profiles.toml` in the user's config directory
//! (`$XDG_CONFIG_HOME/stratus`, else `~/.config/stratus`). The file holds the API key (or a
//! service account's client id and secret) and the cached access token, so it is created with mode 0600 and replaced atomically (written to a
//! temporary file of the same mode, then renamed), never left half-written. A command takes
//! the profile named by `--profile` (or `STRATUS_PROFILE`, else the current one), and when the
//! cached token is missing or about to expire it exchanges the stored key (grant `api_key`) or
//! client credentials (grant `client_credentials`) for a new one and saves it: a token lives
//! 15 minutes, a key or credential until it is deleted or expires.

use super::Failure;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use stratus_client::Client;

/// A token this close to its expiry is renewed before use.
const RENEW_BEFORE_S: i64 = 60;

/// Everything in `profiles.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProfileFile {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One region and the identity and defaults used with it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Profile {
    pub endpoint: String,
    /// The API key the token is renewed from; empty for a service account's profile.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    /// A service account's client id: the token is renewed with `client_secret` through the
    /// `client_credentials` grant instead of from an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub project: String,
    pub region: String,
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Unix seconds at which `access_token` expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
}

/// The directory of the CLI's files.
pub fn config_dir() -> Result<PathBuf, Failure> {
    dirs::config_dir()
        .map(|dir| dir.join("stratus"))
        .ok_or_else(|| {
            Failure::Usage("cannot find a config directory: set HOME or XDG_CONFIG_HOME".into())
        })
}

impl ProfileFile {
    pub fn path() -> Result<PathBuf, Failure> {
        Ok(config_dir()?.join("profiles.toml"))
    }

    /// The saved profiles; empty when the file does not exist yet.
    pub fn load() -> Result<Self, Failure> {
        let path = Self::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Failure::Usage(format!(
                    "{} is not a valid profile file: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Failure::Usage(format!("reading {}: {e}", path.display()))),
        }
    }

    /// Writes the file with mode 0600, atomically.
    pub fn save(&self) -> Result<(), Failure> {
        let path = Self::path()?;
        let text = toml::to_string(self).map_err(|e| Failure::Usage(e.to_string()))?;
        write_private(&path, text.as_bytes())
            .map_err(|e| Failure::Usage(format!("writing {}: {e}", path.display())))
    }

    /// The name of the profile to use: the given one, else the current one, else `default`.
    pub fn resolve_name(&self, name: Option<&str>) -> String {
        name.map(str::to_owned)
            .or_else(|| self.current.clone())
            .unwrap_or_else(|| "default".into())
    }

    pub fn get(&self, name: &str) -> Result<&Profile, Failure> {
        self.profiles.get(name).ok_or_else(|| {
            Failure::Usage(format!(
                "no profile {name:?}; run `stratus login --endpoint URL --api-key-file FILE{}` first",
                if name == "default" {
                    String::new()
                } else {
                    format!(" --profile {name}")
                }
            ))
        })
    }
}

impl Profile {
    /// Whether the cached token is usable for at least another minute.
    fn token_is_fresh(&self) -> bool {
        self.access_token.is_some() && self.token_expires_at.is_some_and(|at| !expires_soon(at))
    }

    /// Exchanges the stored key, or the stored client credentials, for a fresh token.
    pub async fn renew_token(&mut self) -> Result<(), Failure> {
        let client = Client::new(&self.endpoint)?;
        let token = match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) => client.exchange_client_credentials(id, secret).await?,
            (Some(id), None) => {
                return Err(Failure::Usage(format!(
                    "the profile of client {id} holds no client secret; run `stratus login` again"
                )));
            }
            _ => client.exchange_api_key(&self.api_key).await?,
        };
        self.token_expires_at = Some(now() + token.expires_in as i64);
        self.access_token = Some(token.access_token);
        Ok(())
    }
}

/// A token expiring at `expires_at` (Unix seconds) is to be renewed before use.
pub fn expires_soon(expires_at: i64) -> bool {
    expires_at - RENEW_BEFORE_S <= now()
}

/// A client for the named profile (answered with the name it resolved to) with a fresh token,
/// renewing and saving it as needed.
pub async fn authenticated(name: Option<&str>) -> Result<(String, Profile, Client), Failure> {
    let mut file = ProfileFile::load()?;
    let name = file.resolve_name(name);
    let mut profile = file.get(&name)?.clone();
    if !profile.token_is_fresh() {
        profile.renew_token().await?;
        file.profiles.insert(name.clone(), profile.clone());
        file.save()?;
    }
    let token = profile.access_token.clone().unwrap_or_default();
    let client = Client::new(&profile.endpoint)?.with_token(token);
    Ok((name, profile, client))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Writes `bytes` to `path` readable by the owner only, replacing it atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
