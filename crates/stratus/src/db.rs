//! Where a region's state lives, and moving it between stores (`stratus db copy`).
//!
//! A region starts on the embedded SQLite store in its data directory. When it outgrows one
//! machine it moves to PostgreSQL: stop `serve`, `stratus db copy --from DATA_DIR --to URL`,
//! start `serve` with `--database-url URL` (the same data directory keeps the files that are
//! not rows: the admin key, the host credential, imported image files). The copy goes
//! through the stores' snapshots, so it carries every row of every table, the issuer's
//! signing keys and the API keys included, and it checks afterwards that the target holds
//! as many rows in each table as the source.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use stratus_store::{PostgresStore, SqliteStore, Store};

/// Whether `location` names a PostgreSQL database rather than a data directory.
pub fn is_database_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The store of a region: PostgreSQL at `url` when given, else SQLite in `data_dir`.
pub async fn open_region_store(data_dir: &Path, url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.is_empty() {
        let store = SqliteStore::open(data_dir)
            .await
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        return Ok(Arc::new(store));
    }
    let store = PostgresStore::open(url)
        .await
        .with_context(|| format!("opening the database {}", redact(url)))?;
    tracing::info!(database = %redact(url), "the region's state is in PostgreSQL");
    Ok(Arc::new(store))
}

/// Opens `location` (a data directory or a `postgres://` URL). A data directory must already
/// hold a store when `must_exist`.
pub async fn open_location(location: &str, must_exist: bool) -> anyhow::Result<Arc<dyn Store>> {
    if is_database_url(location) {
        return open_region_store(Path::new("."), location).await;
    }
    let dir = Path::new(location);
    anyhow::ensure!(
        !must_exist || dir.join("stratus.db").exists(),
        "{} holds no Stratus store (no stratus.db); give the data directory of `serve`",
        dir.display()
    );
    open_region_store(dir, "").await
}

/// Copies every row from `from` to `to` (each a data directory or a `postgres://` URL). The
/// target must be empty. Returns the rows copied per table.
pub async fn copy(from: &str, to: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let source = open_location(from, true).await?;
    let target = open_location(to, false).await?;
    let snapshot = source.export().await.context("reading the source")?;
    let expected = source.row_counts().await?;
    anyhow::ensure!(
        snapshot.row_counts() == expected,
        "the source has tables this version of Stratus cannot copy: {expected:?}"
    );
    target
        .import(&snapshot)
        .await
        .context("writing the target")?;
    let copied = target.row_counts().await?;
    anyhow::ensure!(
        copied == expected,
        "the copy is incomplete: the source holds {expected:?}, the target {copied:?}"
    );
    Ok(copied)
}
