//! The control plane's side of a bare-metal deploy: what the deploy ramdisk asks for.
//!
//! A server being deployed (or cleaned) boots the deploy ramdisk from virtual media. The ISO
//! its BMC downloads is the region's cached ramdisk with one thing written into its boot line:
//! `stratus.deploy=<callback URL>/internal/v1/deploy/<token>`. The token — 128 random bits,
//! made for this one deploy — is the ramdisk's only credential: with it the ramdisk reads its
//! task (`deploy` or `clean`), fetches the instance's image once, and reports the outcome.
//! Nothing else can be fetched with it, it dies with the outcome (or after a day), and it is
//! held only in memory: the bare-metal driver that opened the session runs in this process and
//! starts over after a restart.
//!
//! The NoCloud seed (the instance's metadata as the installed OS reads it on first boot) is
//! published the same way under a token of its own that lives as long as the instance is on
//! the server, since a BMC may read virtual media from its URL whenever the OS does.

use super::App;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_core::{Error, Result};
use tokio::sync::watch;
use uuid::Uuid;

/// How long a deploy token lives at most.
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The placeholder in the ramdisk ISO's boot line that the callback URL replaces.
pub const RAMDISK_PLACEHOLDER_LEN: usize = 200;

/// What the ramdisk is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployTask {
    /// Write the raw image at this path to the server's disk.
    Deploy { image: PathBuf },
    /// Wipe the disk's partition tables and first and last MiBs.
    Clean,
}

/// How the ramdisk said its task went: `Ok`, or the reason it failed.
pub type DeployOutcome = std::result::Result<(), String>;

struct Session {
    instance: Uuid,
    task: DeployTask,
    image_fetched: bool,
    outcome: watch::Sender<Option<DeployOutcome>>,
    opened: Instant,
}

/// A published seed: the instance it is for, and the ISO.
type Seed = (Uuid, Arc<Vec<u8>>);

/// The open deploy sessions and published seeds, by token.
#[derive(Default)]
pub struct Deploys {
    sessions: std::sync::Mutex<HashMap<String, Session>>,
    seeds: std::sync::Mutex<HashMap<String, Seed>>,
}

fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file the ramdisk downloads.
pub struct DeployFile {
    pub path: PathBuf,
    pub length: u64,
}

impl App {
    /// Opens a session for `task` on behalf of `instance`; returns its token and a receiver
    /// that holds the outcome once the ramdisk reports it.
    pub fn open_deploy(
        &self,
        instance: Uuid,
        task: DeployTask,
    ) -> (String, watch::Receiver<Option<DeployOutcome>>) {
        let (tx, rx) = watch::channel(None);
        let token = token();
        let mut sessions = self.deploys.sessions.lock().unwrap();
        sessions.retain(|_, s| s.opened.elapsed() < SESSION_TTL);
        sessions.insert(
            token.clone(),
            Session {
                instance,
                task,
                image_fetched: false,
                outcome: tx,
                opened: Instant::now(),
            },
        );
        (token, rx)
    }

    /// Ends a session (its token stops working).
    pub fn close_deploy(&self, token: &str) {
        self.deploys.sessions.lock().unwrap().remove(token);
    }

    fn unknown_token() -> Error {
        Error::NotFound("no deploy under this token (it is unknown, used up or expired)".into())
    }

    /// The ramdisk ISO with the session's callback URL in its boot line.
    pub fn deploy_ramdisk(&self, token: &str) -> Result<Vec<u8>> {
        if !self.deploys.sessions.lock().unwrap().contains_key(token) {
            return Err(Self::unknown_token());
        }
        let settings = &self.config.baremetal;
        let (Some(iso), Some(callback)) = (settings.ramdisk.get(), &settings.callback_url) else {
            return Err(Error::FailedPrecondition(
                "this region has no deploy ramdisk configured ([baremetal])".into(),
            ));
        };
        let url = format!(
            "{}/internal/v1/deploy/{token}",
            callback.trim_end_matches('/')
        );
        let mut bytes = std::fs::read(iso)
            .map_err(|e| Error::internal(format!("reading {}: {e}", iso.display())))?;
        patch_placeholder(&mut bytes, &url).map_err(Error::internal)?;
        Ok(bytes)
    }

    /// The session's task as the ramdisk reads it: `deploy` or `clean`.
    pub fn deploy_task(&self, token: &str) -> Result<&'static str> {
        let sessions = self.deploys.sessions.lock().unwrap();
        let session = sessions.get(token).ok_or_else(Self::unknown_token)?;
        Ok(match session.task {
            DeployTask::Deploy { .. } => "deploy",
            DeployTask::Clean => "clean",
        })
    }

    /// The image a deploy writes; once per session.
    pub fn deploy_image(&self, token: &str) -> Result<DeployFile> {
        let mut sessions = self.deploys.sessions.lock().unwrap();
        let session = sessions.get_mut(token).ok_or_else(Self::unknown_token)?;
        let DeployTask::Deploy { image } = &session.task else {
            return Err(Error::NotFound("a cleaning session has no image".into()));
        };
        if session.image_fetched {
            return Err(Error::FailedPrecondition(
                "this deploy's image was fetched already".into(),
            ));
        }
        let length = std::fs::metadata(image)
            .map_err(|e| Error::internal(format!("image {}: {e}", image.display())))?
            .len();
        session.image_fetched = true;
        tracing::info!(instance = %session.instance, "deploy ramdisk fetching its image");
        Ok(DeployFile {
            path: image.clone(),
            length,
        })
    }

    /// The ramdisk's report: `ok`, or `failed: <reason>`.
    pub fn deploy_result(&self, token: &str, report: &str) -> Result<()> {
        let sessions = self.deploys.sessions.lock().unwrap();
        let session = sessions.get(token).ok_or_else(Self::unknown_token)?;
        let report = report.trim();
        let outcome = if report == "ok" {
            Ok(())
        } else {
            let reason = report.strip_prefix("failed:").unwrap_or(report).trim();
            let reason: String = reason.chars().take(500).collect();
            Err(if reason.is_empty() {
                "the deploy ramdisk reported a failure without a reason".to_owned()
            } else {
                reason
            })
        };
        tracing::info!(instance = %session.instance, ?outcome, "deploy ramdisk reported");
        session.outcome.send_replace(Some(outcome));
        Ok(())
    }

    /// Publishes `seed` (an ISO) for `instance`, replacing its earlier one; returns the token.
    pub fn publish_seed(&self, instance: Uuid, seed: Vec<u8>) -> String {
        let mut seeds = self.deploys.seeds.lock().unwrap();
        seeds.retain(|_, (uid, _)| *uid != instance);
        let token = token();
        seeds.insert(token.clone(), (instance, Arc::new(seed)));
        token
    }

    /// Withdraws every seed of `instance`.
    pub fn withdraw_seed(&self, instance: Uuid) {
        self.deploys
            .seeds
            .lock()
            .unwrap()
            .retain(|_, (uid, _)| *uid != instance);
    }

    pub fn deploy_seed(&self, token: &str) -> Result<Arc<Vec<u8>>> {
        self.deploys
            .seeds
            .lock()
            .unwrap()
            .get(token)
            .map(|(_, seed)| seed.clone())
            .ok_or_else(|| Error::NotFound("no seed under this token".into()))
    }
}

/// Writes `url`, padded with spaces, over the ISO's `stratus.deploy=` placeholder.
fn patch_placeholder(iso: &mut [u8], url: &str) -> std::result::Result<(), String> {
    if url.len() > RAMDISK_PLACEHOLDER_LEN || url.contains(char::is_whitespace) {
        return Err(format!(
            "the deploy callback URL must be at most {RAMDISK_PLACEHOLDER_LEN} bytes without \
             spaces: {url}"
        ));
    }
    let mut placeholder = b"stratus.deploy=".to_vec();
    placeholder.extend(std::iter::repeat_n(b'_', RAMDISK_PLACEHOLDER_LEN));
    let at = iso
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_slice())
        .ok_or("the deploy ramdisk ISO has no stratus.deploy= placeholder")?;
    let start = at + b"stratus.deploy=".len();
    let field = &mut iso[start..start + RAMDISK_PLACEHOLDER_LEN];
    field.fill(b' ');
    field[..url.len()].copy_from_slice(url.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_url_replaces_the_placeholder_in_place() {
        let mut iso = b"xx APPEND console=ttyS0 stratus.deploy=".to_vec();
        iso.extend(std::iter::repeat_n(b'_', RAMDISK_PLACEHOLDER_LEN));
        iso.extend(b"\nyy");
        let before = iso.len();
        patch_placeholder(&mut iso, "http://10.0.2.2:1/internal/v1/deploy/ab").unwrap();
        assert_eq!(iso.len(), before);
        let text = String::from_utf8(iso).unwrap();
        assert!(text.contains("stratus.deploy=http://10.0.2.2:1/internal/v1/deploy/ab "));
        assert!(text.ends_with(" \nyy") && !text.contains('_'));
        let mut bare = b"no placeholder".to_vec();
        assert!(patch_placeholder(&mut bare, "http://x").is_err());
    }
}
