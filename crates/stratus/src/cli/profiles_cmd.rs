//! `stratus login` and `stratus profiles …`.

use super::profiles::{Profile, ProfileFile, now};
use super::{Failure, LoginArgs, out, read_file};
use clap::Subcommand;
use stratus_client::Client;

/// `stratus profiles …`.
#[derive(Subcommand)]
pub enum ProfilesCommand {
    /// List the saved profiles; `*` marks the current one.
    List,
    /// Make a profile the current one.
    Use { name: String },
    /// Change the defaults of a profile (the current one unless --profile).
    Set {
        #[arg(long, env = "STRATUS_PROFILE")]
        profile: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        zone: Option<String>,
    },
    /// Forget a profile, its key and its token.
    Delete { name: String },
}

/// Exchanges the key (or the client credentials) for a token, finds the region's defaults,
/// and saves the profile.
pub async fn login(args: LoginArgs) -> Result<(), Failure> {
    let mut profile = Profile {
        endpoint: args.endpoint.trim_end_matches('/').to_owned(),
        project: args.project.unwrap_or_else(|| "default".into()),
        ..Profile::default()
    };
    match (
        &args.api_key_file,
        &args.client_id,
        &args.client_secret_file,
    ) {
        (Some(file), _, _) => profile.api_key = read_secret(file, "the API key file")?,
        (None, Some(id), Some(file)) => {
            profile.client_id = Some(id.trim().to_owned());
            profile.client_secret = Some(read_secret(file, "the client secret file")?);
        }
        _ => {
            return Err(Failure::Usage(
                "give --api-key-file, or --client-id with --client-secret-file".into(),
            ));
        }
    }
    profile.renew_token().await?;
    let client = Client::new(&profile.endpoint)?
        .with_token(profile.access_token.clone().unwrap_or_default());
    let region = match args.region {
        Some(region) => client.catalog(&region).region().await?,
        None => {
            let regions = client.list_regions().await?.regions;
            regions.into_iter().next().ok_or_else(|| {
                Failure::Usage("the endpoint serves no region; name one with --region".into())
            })?
        }
    };
    let first_zone = region
        .zones
        .first()
        .and_then(|uri| uri.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    profile.region = region.id;
    profile.zone = args.zone.unwrap_or(first_zone);

    let mut file = ProfileFile::load()?;
    let name = args.profile.unwrap_or_else(|| "default".into());
    file.profiles.insert(name.clone(), profile.clone());
    file.current = Some(name.clone());
    file.save()?;
    let expires_in = profile.token_expires_at.unwrap_or_default() - now();
    eprintln!(
        "Signed in to {} as profile {name:?} (region {}, zone {}, project {}); the token is valid for {} min and renewed from the {} as needed.\nSaved in {}",
        profile.endpoint,
        profile.region,
        profile.zone,
        profile.project,
        expires_in / 60,
        if profile.client_id.is_some() {
            "client credentials"
        } else {
            "key"
        },
        ProfileFile::path()?.display()
    );
    Ok(())
}

/// The trimmed content of a file holding a secret; an empty file is a usage error.
fn read_secret(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    let secret = read_file(path, what)?.trim().to_owned();
    if secret.is_empty() {
        return Err(Failure::Usage(format!("{} is empty", path.display())));
    }
    Ok(secret)
}

/// Revokes the profile's cached token (when the region can be reached) and removes the profile.
pub async fn logout(name: Option<&str>) -> Result<(), Failure> {
    let mut file = ProfileFile::load()?;
    let name = file.resolve_name(name);
    let profile = file.get(&name)?.clone();
    if let Some(token) = &profile.access_token {
        let revoked = async {
            Client::new(&profile.endpoint)?
                .with_token(token.clone())
                .revoke_token(token)
                .await
        }
        .await;
        if let Err(e) = revoked {
            eprintln!("warning: the token could not be revoked ({e}); it expires by itself");
        }
    }
    file.profiles.remove(&name);
    if file.current.as_deref() == Some(name.as_str()) {
        file.current = None;
    }
    file.save()?;
    eprintln!(
        "Signed out of {}; profile {name:?} removed.",
        profile.endpoint
    );
    Ok(())
}

impl ProfilesCommand {
    pub fn run(self) -> Result<(), Failure> {
        let mut file = ProfileFile::load()?;
        match self {
            ProfilesCommand::List => {
                let current = file.resolve_name(None);
                let mut text = String::new();
                for (name, p) in &file.profiles {
                    let mark = if *name == current { "*" } else { " " };
                    text.push_str(&format!(
                        "{mark} {name}  {}  region={} zone={} project={}\n",
                        p.endpoint, p.region, p.zone, p.project
                    ));
                }
                if text.is_empty() {
                    text = "no profiles; run `stratus login` first\n".into();
                }
                out(&text);
                Ok(())
            }
            ProfilesCommand::Use { name } => {
                file.get(&name)?;
                file.current = Some(name);
                file.save()
            }
            ProfilesCommand::Set {
                profile,
                project,
                region,
                zone,
            } => {
                let name = file.resolve_name(profile.as_deref());
                file.get(&name)?;
                let entry = file.profiles.get_mut(&name).expect("checked above");
                if let Some(project) = project {
                    entry.project = project;
                }
                if let Some(region) = region {
                    entry.region = region;
                }
                if let Some(zone) = zone {
                    entry.zone = zone;
                }
                file.save()
            }
            ProfilesCommand::Delete { name } => {
                file.get(&name)?;
                file.profiles.remove(&name);
                if file.current.as_deref() == Some(name.as_str()) {
                    file.current = None;
                }
                file.save()
            }
        }
    }
}
