//! The PostgreSQL backend: the store of a region whose control plane runs as several replicas.
//!
//! The SQL stays within what CockroachDB accepts too, so a region can run on a distributed
//! database that speaks the PostgreSQL protocol: keys are UUID v4 values made by Stratus (no
//! sequences), each migration holds one DDL statement, and every multi-statement transaction
//! runs in a retry loop that repeats it on a serialization failure (SQLSTATE 40001) or a
//! deadlock (40P01), a bounded number of times with jittered backoff.
//!
//! Decisions that read before they write run `SERIALIZABLE`, so the database, not Stratus,
//! catches two replicas deciding on the same stale read. Placement is the hot one: it locks
//! the zone's host rows (`FOR UPDATE`) under `READ COMMITTED`, so concurrent creates in a zone
//! queue behind each other and each sees the capacity the previous one took, instead of
//! aborting and retrying under load.
//!
//! Replicas hear of each other's writes to instances and images through `NOTIFY` on channel
//! `stratus_changes` (see [`Store::follow_changes`]), so an agent long-polling one replica
//! learns of a create made through another at once. A database without `pg_notify` (such as
//! CockroachDB) is noticed at the first attempt; replicas then rely on bounded waits.
//!
//! When the database cannot be reached, operations fail with `Unavailable` within the pool's
//! acquire timeout (the API answers 503 with `Retry-After`); the pool reconnects by itself, so
//! a region resumes without a restart when the database is back.

use crate::records::*;
use crate::rows::*;
use crate::{Page, PageRequest, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Row};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;
use stratus_core::placement::{Demand, choose_host};
use stratus_core::selector::LabelSelector;
use stratus_core::{Error, Result};
use stratus_types::InstanceStatus;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How many times a transaction is tried before a serialization failure is returned.
const MAX_ATTEMPTS: u32 = 12;

const SERIALIZABLE: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";
const READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The channel replicas announce their writes on.
const CHANGES_CHANNEL: &str = "stratus_changes";

/// The PostgreSQL store: one connection pool shared by reads and writes.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Whether the database takes `pg_notify` (cleared at the first refusal).
    notifies: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl_columns!(
    PgRow,
    db_error,
    |row: &PgRow, col: &str| row.try_get::<Uuid, _>(col).map_err(db_error),
    |row: &PgRow, col: &str| row.try_get::<Option<Uuid>, _>(col).map_err(db_error)
);

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and applies pending
    /// migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database.url", format!("not a PostgreSQL URL: {e}")))?;
        // One connection first, so a bad address or password is reported as itself.
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to the database: {e}")))?;
        sqlx::Connection::close(probe).await.map_err(db_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| Error::internal(format!("migrating the database: {e}")))?;
        Ok(Self {
            pool,
            notifies: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    /// Tells the other replicas that instances or images changed. Best effort: a lost
    /// announcement only delays them until their bounded wait ends.
    async fn announce(&self) {
        use std::sync::atomic::Ordering;
        if !self.notifies.load(Ordering::Relaxed) {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGES_CHANNEL)
            .execute(&self.pool)
            .await;
        if let Err(e) = sent
            && sqlstate(&e).as_deref() == Some("42883")
        {
            tracing::warn!("the database has no pg_notify; replicas fall back to bounded waits");
            self.notifies.store(false, Ordering::Relaxed);
        }
    }
}

/// Listens on [`CHANGES_CHANNEL`] and bumps `changes` for every announcement, reconnecting
/// after outages (and bumping then, since announcements may have been missed meanwhile).
async fn follow(pool: PgPool, changes: crate::Changes) {
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            changes.bump();
            loop {
                listener.recv().await?;
                changes.bump();
            }
        };
        let outcome: std::result::Result<(), sqlx::Error> = listening.await;
        match outcome {
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("0A000" | "42883")) => {
                tracing::warn!(error = %e, "the database does not notify; replicas fall back to bounded waits");
                return;
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Why a transaction body stopped: the database (maybe worth a retry) or a domain decision.
enum TxError {
    Db(sqlx::Error),
    Domain(Error),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Domain(e)
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Serialization failures and deadlocks: the transaction did nothing and may be run again.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

async fn backoff(attempt: u32) {
    let base = 5u64 << attempt.min(6);
    let jitter = rand_jitter(base);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// A pseudo-random share of `upto`, enough to spread retries of competing transactions.
fn rand_jitter(upto: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos % upto.max(1)
}

/// Runs `$body` in a transaction `$tx` begun with `$begin`, committing at its end and running
/// it again on a serialization failure. The body returns its value with `?` on database and
/// domain errors alike; an early `return Err(e.into())` rolls back.
macro_rules! transaction {
    ($store:expr, $begin:expr, |$tx:ident| $body:block) => {{
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome: std::result::Result<_, TxError> = async {
                let mut $tx = $store.pool.begin_with($begin).await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Ok(value) => break Ok(value),
                Err(TxError::Db(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    backoff(attempt).await;
                }
                Err(TxError::Db(e)) => break Err(db_error(e)),
                Err(TxError::Domain(e)) => break Err(e),
            }
        }
    }};
}

/// Maps a database failure: lost connections and a database that is down, restarting or
/// overloaded are `Unavailable` (the caller may retry); anything else is internal.
fn db_error(e: sqlx::Error) -> Error {
    let unreachable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => {
            let code = sqlstate(&e).unwrap_or_default();
            code.starts_with("08")
                || matches!(
                    code.as_str(),
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }
        _ => false,
    };
    if unreachable {
        tracing::warn!(error = %e, "the database is unavailable");
        Error::Unavailable("the region's database is unavailable right now; retry shortly".into())
    } else {
        Error::internal(format!("database: {e}"))
    }
}

/// Maps a unique-key violation to the caller's "already exists" error, anything else as usual.
fn unique_or(e: sqlx::Error, already_exists: impl FnOnce() -> Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => already_exists(),
        _ => db_error(e),
    }
}

/// The one row `sql` finds for `key` (bound as `$1`), mapped.
async fn fetch_by<T>(
    pool: &PgPool,
    sql: &'static str,
    key: &str,
    map: fn(&PgRow) -> Result<T>,
) -> Result<Option<T>> {
    sqlx::query(sql)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(map)
        .transpose()
}

/// Every row of `table`, mapped.
async fn select_all<T>(pool: &PgPool, table: &str, map: fn(&PgRow) -> Result<T>) -> Result<Vec<T>> {
    // `table` is one of this module's table names.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {table} ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(map)
    .collect()
}

/// Reads one page of an id-ordered collection (see [`page_from_batches`]). `select` ends in
/// a WHERE clause whose placeholders `binds` fill; the cursor and the batch size follow as
/// two more, compared and ordered by bytes as on every backend.
async fn scan_page<T>(
    pool: &PgPool,
    select: &str,
    binds: &[&str],
    page: &PageRequest,
    map: fn(&PgRow) -> Result<T>,
    id_of: fn(&T) -> &str,
    keep: &(dyn Fn(&T) -> bool + Send + Sync),
) -> Result<Page<T>> {
    // `select` is one of this module's constant queries; values go in as binds.
    let sql = format!(
        "{select} AND id COLLATE \"C\" > ${} ORDER BY id COLLATE \"C\" LIMIT ${}",
        binds.len() + 1,
        binds.len() + 2
    );
    let fetch = |cursor: String, batch: usize| {
        let sql = sql.clone();
        async move {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                query = query.bind(*b);
            }
            query
                .bind(cursor)
                .bind(batch as i64)
                .fetch_all(pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(map)
                .collect::<Result<Vec<T>>>()
        }
    };
    page_from_batches(page, fetch, id_of, keep).await
}

const INSTANCE_COLUMNS: &str = "uid, project, id, zone, host_id, spec, vcpus, memory_mb, gpu_type, \
     gpu_count, desired, status, status_message, status_changed_at, generation, created_at, updated_at";

const IMAGE_INSERT: &str = "INSERT INTO images (uid, id, display_name, description, os, format, \
     size_bytes, min_disk_gb, status, status_message, source, sha256, file, bytes_done, generation, \
     created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

fn bind_image<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    i: &'q ImageRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(i.uid)
        .bind(&i.id)
        .bind(&i.display_name)
        .bind(&i.description)
        .bind(&i.os)
        .bind(i.format.as_str())
        .bind(i.size_bytes as i64)
        .bind(i.min_disk_gb as i64)
        .bind(i.status.as_str())
        .bind(&i.status_message)
        .bind(&i.source)
        .bind(&i.sha256)
        .bind(&i.file)
        .bind(i.bytes_done as i64)
        .bind(i.generation)
        .bind(ms(i.created_at))
        .bind(ms(i.updated_at))
}

async fn insert_organization<'c>(
    db: impl PgExecutor<'c>,
    org: &OrganizationRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO organizations (uid, id, display_name, description, generation, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org.uid)
    .bind(&org.id)
    .bind(&org.display_name)
    .bind(&org.description)
    .bind(org.generation)
    .bind(ms(org.created_at))
    .bind(ms(org.updated_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_project<'c>(db: impl PgExecutor<'c>, project: &ProjectRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO projects (uid, id, organization_id, display_name, description, generation, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(project.uid)
    .bind(&project.id)
    .bind(&project.organization_id)
    .bind(&project.display_name)
    .bind(&project.description)
    .bind(project.generation)
    .bind(ms(project.created_at))
    .bind(ms(project.updated_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_host<'c>(db: impl PgExecutor<'c>, host: &HostRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO hosts (id, name, zone, driver, vcpus, memory_mb, gpus, registered_at, \
         last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(host.id)
    .bind(&host.name)
    .bind(&host.zone)
    .bind(&host.driver)
    .bind(host.vcpus as i64)
    .bind(host.memory_mb as i64)
    .bind(to_json(&host.gpus))
    .bind(ms(host.registered_at))
    .bind(ms(host.last_seen_at))
    .execute(db)
    .await
    .map(drop)
}

/// Inserts `instance` as it is (its host included); returns the stored row.
async fn insert_instance<'c>(
    db: impl PgExecutor<'c>,
    instance: &InstanceRecord,
) -> sqlx::Result<PgRow> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16, $17) RETURNING *"
    )))
    .bind(instance.uid)
    .bind(&instance.project)
    .bind(&instance.id)
    .bind(&instance.zone)
    .bind(instance.host_id)
    .bind(to_json(&instance.spec))
    .bind(instance.vcpus as i64)
    .bind(instance.memory_mb as i64)
    .bind(&instance.gpu_type)
    .bind(instance.gpu_count as i64)
    .bind(instance.desired.as_str())
    .bind(instance.status.as_str())
    .bind(&instance.status_message)
    .bind(ms(instance.status_changed_at))
    .bind(instance.generation)
    .bind(ms(instance.created_at))
    .bind(ms(instance.updated_at))
    .fetch_one(db)
    .await
}

async fn insert_signing_key<'c>(
    db: impl PgExecutor<'c>,
    key: &SigningKeyRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_key)
    .bind(&key.public_key)
    .bind(ms(key.created_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_api_key<'c>(db: impl PgExecutor<'c>, key: &ApiKeyRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (uid, id, secret_hash, organization_id, scope, scope_id, roles, \
         created_by, display_name, created_at, last_used_at, status, previous_secret_hash, \
         previous_secret_expires_at, last_rotated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(key.uid)
    .bind(&key.id)
    .bind(&key.secret_hash)
    .bind(&key.organization_id)
    .bind(&key.scope)
    .bind(&key.scope_id)
    .bind(to_json(&key.roles))
    .bind(&key.created_by)
    .bind(&key.display_name)
    .bind(ms(key.created_at))
    .bind(key.last_used_at.map(ms))
    .bind(&key.status)
    .bind(&key.previous_secret_hash)
    .bind(key.previous_secret_expires_at.map(ms))
    .bind(key.last_rotated_at.map(ms))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_console_log<'c>(
    db: impl PgExecutor<'c>,
    log: &ConsoleLogRecord,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO console_logs (instance_uid, base_offset, content) VALUES ($1, $2, $3)")
        .bind(log.instance_uid)
        .bind(log.base_offset as i64)
        .bind(&log.content)
        .execute(db)
        .await
        .map(drop)
}

fn already_exists(instance: &InstanceRecord) -> Error {
    Error::AlreadyExists(format!(
        "instance {} already exists in project {}",
        instance.id, instance.project
    ))
}

#[async_trait]
impl Store for PostgresStore {
    async fn setting_or_init(&self, key: &str, value: &str) -> Result<String> {
        transaction!(self, SERIALIZABLE, |tx| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
            let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            stored
        })
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn create_organization(&self, org: &OrganizationRecord) -> Result<()> {
        insert_organization(&self.pool, org).await.map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("organization {} already exists", org.id))
            })
        })
    }

    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM organizations WHERE id = $1",
            id,
            organization_from_row,
        )
        .await
    }

    async fn list_organizations(&self, page: &PageRequest) -> Result<Page<OrganizationRecord>> {
        scan_page(
            &self.pool,
            "SELECT * FROM organizations WHERE 1 = 1",
            &[],
            page,
            organization_from_row,
            |o| &o.id,
            &|_| true,
        )
        .await
    }

    async fn update_organization(
        &self,
        org: &OrganizationRecord,
    ) -> Result<Option<OrganizationRecord>> {
        sqlx::query(
            "UPDATE organizations SET display_name = $1, description = $2, updated_at = $3, \
             generation = generation + 1 WHERE id = $4 AND generation = $5 RETURNING *",
        )
        .bind(&org.display_name)
        .bind(&org.description)
        .bind(ms(org.updated_at))
        .bind(&org.id)
        .bind(org.generation)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn delete_organization(&self, id: &str) -> Result<bool> {
        transaction!(self, SERIALIZABLE, |tx| {
            let projects: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE organization_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if projects > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "organization {id} still has {projects} projects; delete them first"
                ))
                .into());
            }
            sqlx::query("DELETE FROM organizations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        })
    }

    async fn create_project(&self, project: &ProjectRecord) -> Result<()> {
        transaction!(self, SERIALIZABLE, |tx| {
            let org_exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
                    .bind(&project.organization_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if !org_exists {
                return Err(Error::invalid(
                    "organizationId",
                    format!("organization {} does not exist", project.organization_id),
                )
                .into());
            }
            if let Err(e) = insert_project(&mut *tx, project).await {
                if retryable(&e) {
                    return Err(e.into());
                }
                return Err(unique_or(e, || {
                    Error::AlreadyExists(format!("project {} already exists", project.id))
                })
                .into());
            }
        })
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM projects WHERE id = $1",
            id,
            project_from_row,
        )
        .await
    }

    async fn list_projects(
        &self,
        organization_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProjectRecord>> {
        let (select, binds): (&str, Vec<&str>) = match organization_id {
            Some(org) => (
                "SELECT * FROM projects WHERE organization_id = $1",
                vec![org],
            ),
            None => ("SELECT * FROM projects WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.pool,
            select,
            &binds,
            page,
            project_from_row,
            |p| &p.id,
            &|_| true,
        )
        .await
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<Option<ProjectRecord>> {
        sqlx::query(
            "UPDATE projects SET display_name = $1, description = $2, updated_at = $3, \
             generation = generation + 1 WHERE id = $4 AND generation = $5 RETURNING *",
        )
        .bind(&project.display_name)
        .bind(&project.description)
        .bind(ms(project.updated_at))
        .bind(&project.id)
        .bind(project.generation)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn delete_project(&self, id: &str) -> Result<bool> {
        transaction!(self, SERIALIZABLE, |tx| {
            let instances: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE project = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if instances > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "project {id} still has {instances} instances; delete them first"
                ))
                .into());
            }
            sqlx::query("DELETE FROM projects WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        })
    }

    async fn register_host(&self, host: &HostRegistrationRecord) -> Result<HostRecord> {
        let row = sqlx::query(
            "INSERT INTO hosts (id, name, zone, driver, vcpus, memory_mb, gpus, registered_at, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, driver = excluded.driver, \
             vcpus = excluded.vcpus, memory_mb = excluded.memory_mb, gpus = excluded.gpus, \
             last_seen_at = excluded.last_seen_at RETURNING *",
        )
        .bind(Uuid::new_v4())
        .bind(&host.name)
        .bind(&host.zone)
        .bind(&host.driver)
        .bind(host.vcpus as i64)
        .bind(host.memory_mb as i64)
        .bind(to_json(&host.gpus))
        .bind(ms(host.now))
        .bind(ms(host.now))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        host_from_row(&row)
    }

    async fn touch_host(&self, host_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE hosts SET last_seen_at = $1 WHERE id = $2")
            .bind(ms(now))
            .bind(host_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_hosts(&self) -> Result<Vec<HostRecord>> {
        sqlx::query("SELECT * FROM hosts ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(host_from_row)
            .collect()
    }

    async fn create_instance(
        &self,
        instance: &InstanceRecord,
        demand: &Demand,
        live_since: DateTime<Utc>,
    ) -> Result<InstanceRecord> {
        let created = transaction!(self, READ_COMMITTED, |tx| {
            // Creates in one zone queue here, so each sees what the previous one placed.
            let hosts: Vec<HostRecord> = sqlx::query(
                "SELECT * FROM hosts WHERE zone = $1 AND last_seen_at >= $2 ORDER BY id FOR UPDATE",
            )
            .bind(&instance.zone)
            .bind(ms(live_since))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(host_from_row)
            .collect::<Result<_>>()?;
            let taken: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM instances WHERE project = $1 AND id = $2)",
            )
            .bind(&instance.project)
            .bind(&instance.id)
            .fetch_one(&mut *tx)
            .await?;
            if taken {
                return Err(already_exists(instance).into());
            }
            let sums = sqlx::query(USAGE_BY_HOST).fetch_all(&mut *tx).await?;
            let gpu_sums = sqlx::query(GPU_USAGE_BY_HOST).fetch_all(&mut *tx).await?;
            let usage = host_usage(&hosts, &sums, &gpu_sums)?;
            let mut placed = instance.clone();
            placed.host_id = Some(choose_host(&instance.zone, demand, &usage)?);
            let row = match insert_instance(&mut *tx, &placed).await {
                Ok(row) => row,
                Err(e) if retryable(&e) => return Err(e.into()),
                Err(e) => return Err(unique_or(e, || already_exists(instance)).into()),
            };
            instance_from_row(&row)?
        });
        if created.is_ok() {
            self.announce().await;
        }
        created
    }

    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRecord>> {
        sqlx::query("SELECT * FROM instances WHERE project = $1 AND id = $2")
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(instance_from_row)
            .transpose()
    }

    async fn get_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>> {
        sqlx::query("SELECT * FROM instances WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(instance_from_row)
            .transpose()
    }

    async fn list_instances(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceRecord>> {
        scan_page(
            &self.pool,
            "SELECT * FROM instances WHERE project = $1",
            &[project],
            page,
            instance_from_row,
            |i| &i.id,
            &|i: &InstanceRecord| selector.matches(&i.spec.labels),
        )
        .await
    }

    async fn update_instance(&self, instance: &InstanceRecord) -> Result<Option<InstanceRecord>> {
        let stored = sqlx::query(
            "UPDATE instances SET host_id = $1, spec = $2, desired = $3, status = $4, \
             status_message = $5, status_changed_at = $6, updated_at = $7, \
             generation = generation + 1 WHERE uid = $8 AND generation = $9 RETURNING *",
        )
        .bind(instance.host_id)
        .bind(to_json(&instance.spec))
        .bind(instance.desired.as_str())
        .bind(instance.status.as_str())
        .bind(&instance.status_message)
        .bind(ms(instance.status_changed_at))
        .bind(ms(instance.updated_at))
        .bind(instance.uid)
        .bind(instance.generation)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(instance_from_row)
        .transpose();
        if matches!(stored, Ok(Some(_))) {
            self.announce().await;
        }
        stored
    }

    async fn finalize_instance_deletion(&self, uid: Uuid) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM instances WHERE uid = $1 AND desired = 'DELETED'")
            .bind(uid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        if deleted > 0 {
            self.announce().await;
        }
        Ok(deleted > 0)
    }

    async fn list_instances_on_host(&self, host_id: Uuid) -> Result<Vec<InstanceRecord>> {
        sqlx::query("SELECT * FROM instances WHERE host_id = $1 ORDER BY uid")
            .bind(host_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(instance_from_row)
            .collect()
    }

    async fn list_instances_in_status_since(
        &self,
        statuses: &[InstanceStatus],
        before: DateTime<Utc>,
    ) -> Result<Vec<InstanceRecord>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        sqlx::query("SELECT * FROM instances WHERE status = ANY($1) AND status_changed_at < $2")
            .bind(&statuses)
            .bind(ms(before))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(instance_from_row)
            .collect()
    }

    async fn claim_instance_lease(
        &self,
        uid: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE instances SET lease_owner = $1, lease_expires_at = $2 WHERE uid = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at < $4)",
        )
        .bind(owner)
        .bind(ms(until))
        .bind(uid)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(claimed > 0)
    }

    async fn release_instance_lease(&self, uid: Uuid, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE uid = $1 AND lease_owner = $2",
        )
        .bind(uid)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn count_instances(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn upsert_image(&self, image: &ImageRecord) -> Result<ImageRecord> {
        let sql = format!(
            "{IMAGE_INSERT} ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
             description = excluded.description, os = excluded.os, format = excluded.format, \
             size_bytes = excluded.size_bytes, min_disk_gb = excluded.min_disk_gb, \
             status = excluded.status, file = excluded.file, updated_at = excluded.updated_at, \
             generation = images.generation + 1 RETURNING *"
        );
        let row = bind_image(sqlx::query(sqlx::AssertSqlSafe(sql)), image)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        image_from_row(&row)
    }

    async fn create_image(&self, image: &ImageRecord) -> Result<()> {
        bind_image(sqlx::query(IMAGE_INSERT), image)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                unique_or(e, || {
                    Error::AlreadyExists(format!("image {} already exists", image.id))
                })
            })?;
        self.announce().await;
        Ok(())
    }

    async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM images WHERE id = $1",
            id,
            image_from_row,
        )
        .await
    }

    async fn list_images(&self, page: &PageRequest) -> Result<Page<ImageRecord>> {
        scan_page(
            &self.pool,
            "SELECT * FROM images WHERE 1 = 1",
            &[],
            page,
            image_from_row,
            |i| &i.id,
            &|_| true,
        )
        .await
    }

    async fn update_image(&self, image: &ImageRecord) -> Result<Option<ImageRecord>> {
        sqlx::query(
            "UPDATE images SET display_name = $1, description = $2, os = $3, size_bytes = $4, \
             min_disk_gb = $5, status = $6, status_message = $7, sha256 = $8, file = $9, \
             bytes_done = $10, updated_at = $11, generation = generation + 1 \
             WHERE id = $12 AND generation = $13 RETURNING *",
        )
        .bind(&image.display_name)
        .bind(&image.description)
        .bind(&image.os)
        .bind(image.size_bytes as i64)
        .bind(image.min_disk_gb as i64)
        .bind(image.status.as_str())
        .bind(&image.status_message)
        .bind(&image.sha256)
        .bind(&image.file)
        .bind(image.bytes_done as i64)
        .bind(ms(image.updated_at))
        .bind(&image.id)
        .bind(image.generation)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(image_from_row)
        .transpose()
    }

    async fn claim_image_lease(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE images SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $4 OR lease_expires_at < $5)",
        )
        .bind(owner)
        .bind(ms(until))
        .bind(id)
        .bind(owner)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(claimed > 0)
    }

    async fn release_image_lease(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE images SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn delete_image(&self, id: &str, self_link: &str) -> Result<bool> {
        transaction!(self, SERIALIZABLE, |tx| {
            let users: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE strpos(spec, $1) > 0")
                    .bind(format!("\"source\":\"{self_link}\""))
                    .fetch_one(&mut *tx)
                    .await?;
            if users > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "image {id} is the source of {users} instances' disks; delete them first"
                ))
                .into());
            }
            sqlx::query("DELETE FROM images WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        })
    }

    async fn append_console(&self, uid: Uuid, at: u64, bytes: &[u8], keep: u64) -> Result<u64> {
        transaction!(self, SERIALIZABLE, |tx| {
            let row = sqlx::query(
                "SELECT base_offset, content FROM console_logs WHERE instance_uid = $1",
            )
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await?;
            let (mut base, mut content): (u64, Vec<u8>) = match &row {
                Some(r) => (r.int("base_offset")? as u64, r.bytes("content")?),
                None => (0, Vec::new()),
            };
            let end = base + content.len() as u64;
            if at != end || bytes.is_empty() {
                end
            } else {
                content.extend_from_slice(bytes);
                if content.len() as u64 > keep {
                    let drop = content.len() - keep as usize;
                    content.drain(..drop);
                    base += drop as u64;
                }
                let written = sqlx::query(
                    "INSERT INTO console_logs (instance_uid, base_offset, content) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM instances WHERE uid = $1) \
                     ON CONFLICT (instance_uid) DO UPDATE SET base_offset = excluded.base_offset, \
                     content = excluded.content",
                )
                .bind(uid)
                .bind(base as i64)
                .bind(&content)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if written > 0 {
                    base + content.len() as u64
                } else {
                    end
                }
            }
        })
    }

    async fn read_console(&self, uid: Uuid, start: u64, max: u64) -> Result<(u64, Vec<u8>, u64)> {
        let row =
            sqlx::query("SELECT base_offset, content FROM console_logs WHERE instance_uid = $1")
                .bind(uid)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        let Some(row) = row else {
            return Ok((0, Vec::new(), 0));
        };
        let base = row.int("base_offset")? as u64;
        let content = row.bytes("content")?;
        let end = base + content.len() as u64;
        let from = start.clamp(base, end);
        let to = (from + max).min(end);
        let slice = content[(from - base) as usize..(to - base) as usize].to_vec();
        Ok((from, slice, to))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        sqlx::query("SELECT * FROM signing_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(signing_key_from_row)
            .collect()
    }

    async fn init_signing_key(&self, key: &SigningKeyRecord) -> Result<Vec<SigningKeyRecord>> {
        transaction!(self, SERIALIZABLE, |tx| {
            let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
                .fetch_one(&mut *tx)
                .await?;
            if existing == 0 {
                insert_signing_key(&mut *tx, key).await?;
            }
        })?;
        self.list_signing_keys().await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        insert_api_key(&self.pool, key).await.map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("API key {} already exists", key.id))
            })
        })
    }

    async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM api_keys WHERE secret_hash = $1 OR previous_secret_hash = $1",
            secret_hash,
            api_key_from_row,
        )
        .await
    }

    async fn touch_api_key(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE uid = $2")
            .bind(ms(now))
            .bind(uid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM api_keys WHERE id = $1",
            id,
            api_key_from_row,
        )
        .await
    }

    async fn list_api_keys(
        &self,
        organization: Option<&str>,
        created_by: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>> {
        let (select, binds): (&str, Vec<&str>) = match (organization, created_by) {
            (Some(org), Some(by)) => (
                "SELECT * FROM api_keys WHERE organization_id = $1 AND created_by = $2",
                vec![org, by],
            ),
            (Some(org), None) => (
                "SELECT * FROM api_keys WHERE organization_id = $1",
                vec![org],
            ),
            (None, Some(by)) => ("SELECT * FROM api_keys WHERE created_by = $1", vec![by]),
            (None, None) => ("SELECT * FROM api_keys WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.pool,
            select,
            &binds,
            page,
            api_key_from_row,
            |k| &k.id,
            &|_| true,
        )
        .await
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<Option<ApiKeyRecord>> {
        sqlx::query(
            "UPDATE api_keys SET display_name = $1, roles = $2, status = $3, secret_hash = $4, \
             previous_secret_hash = $5, previous_secret_expires_at = $6, last_rotated_at = $7 \
             WHERE uid = $8 RETURNING *",
        )
        .bind(&key.display_name)
        .bind(to_json(&key.roles))
        .bind(&key.status)
        .bind(&key.secret_hash)
        .bind(&key.previous_secret_hash)
        .bind(key.previous_secret_expires_at.map(ms))
        .bind(key.last_rotated_at.map(ms))
        .bind(key.uid)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn delete_api_key(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn revoke_token(&self, token: &RevokedTokenRecord) -> Result<()> {
        insert_revoked_token(&self.pool, token)
            .await
            .map_err(db_error)
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(found.is_some())
    }

    async fn create_service_account(&self, account: &ServiceAccountRecord) -> Result<()> {
        insert_service_account(&self.pool, account)
            .await
            .map_err(|e| {
                unique_or(e, || {
                    Error::AlreadyExists(format!("service account {} already exists", account.id))
                })
            })
    }

    async fn get_service_account(&self, id: &str) -> Result<Option<ServiceAccountRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM service_accounts WHERE id = $1",
            id,
            service_account_from_row,
        )
        .await
    }

    async fn get_service_account_by_client_id(
        &self,
        client_id: &str,
    ) -> Result<Option<ServiceAccountRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM service_accounts WHERE client_id = $1",
            client_id,
            service_account_from_row,
        )
        .await
    }

    async fn list_service_accounts(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ServiceAccountRecord>> {
        let (select, binds): (&str, Vec<&str>) = match organization {
            Some(org) => (
                "SELECT * FROM service_accounts WHERE organization_id = $1",
                vec![org],
            ),
            None => ("SELECT * FROM service_accounts WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.pool,
            select,
            &binds,
            page,
            service_account_from_row,
            |a| &a.id,
            &|_| true,
        )
        .await
    }

    async fn update_service_account(
        &self,
        account: &ServiceAccountRecord,
    ) -> Result<Option<ServiceAccountRecord>> {
        sqlx::query(
            "UPDATE service_accounts SET display_name = $1, description = $2, roles = $3, \
             status = $4, updated_at = $5 WHERE id = $6 RETURNING *",
        )
        .bind(&account.display_name)
        .bind(&account.description)
        .bind(to_json(&account.roles))
        .bind(&account.status)
        .bind(ms(account.updated_at))
        .bind(&account.id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(service_account_from_row)
        .transpose()
    }

    async fn delete_service_account(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM service_accounts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn create_credential(
        &self,
        credential: &CredentialRecord,
        max_active: usize,
        now: DateTime<Utc>,
    ) -> Result<()> {
        transaction!(self, SERIALIZABLE, |tx| {
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM service_account_credentials WHERE service_account_id = $1 \
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(&credential.service_account_id)
            .bind(ms(now))
            .fetch_one(&mut *tx)
            .await?;
            if active as usize >= max_active {
                return Err(too_many_credentials(max_active).into());
            }
            insert_credential(&mut *tx, credential).await?;
        })
    }

    async fn list_credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRecord>> {
        sqlx::query(
            "SELECT * FROM service_account_credentials WHERE service_account_id = $1 ORDER BY id",
        )
        .bind(service_account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM service_account_credentials WHERE id = $1",
            id,
            credential_from_row,
        )
        .await
    }

    async fn find_credential_by_hash(&self, secret_hash: &str) -> Result<Option<CredentialRecord>> {
        fetch_by(
            &self.pool,
            "SELECT * FROM service_account_credentials WHERE secret_hash = $1",
            secret_hash,
            credential_from_row,
        )
        .await
    }

    async fn touch_credential(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE service_account_credentials SET last_used_at = $1 WHERE uid = $2")
            .bind(ms(now))
            .bind(uid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_credential(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM service_account_credentials WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn record_audit_event(&self, event: &AuditEventRecord) -> Result<()> {
        insert_audit_event(&self.pool, event)
            .await
            .map_err(db_error)
    }

    async fn prune_audit_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Event ids start with their time in zero-padded milliseconds: the key orders by time.
        let bound = format!("{:013}", before.timestamp_millis());
        sqlx::query("DELETE FROM audit_events WHERE id < $1")
            .bind(bound)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db_error)
    }

    async fn prune_revoked_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db_error)
    }

    async fn list_audit_events(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEventRecord>> {
        let (select, binds): (&str, Vec<&str>) = match organization {
            Some(org) => (
                "SELECT * FROM audit_events WHERE organization_id = $1",
                vec![org],
            ),
            None => ("SELECT * FROM audit_events WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.pool,
            select,
            &binds,
            page,
            audit_event_from_row,
            |e| &e.id,
            &|_| true,
        )
        .await
    }

    async fn export(&self) -> Result<Snapshot> {
        let settings = sqlx::query_as("SELECT key, value FROM settings ORDER BY key")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let pool = &self.pool;
        Ok(Snapshot {
            settings,
            organizations: select_all(pool, "organizations", organization_from_row).await?,
            projects: select_all(pool, "projects", project_from_row).await?,
            hosts: select_all(pool, "hosts", host_from_row).await?,
            instances: select_all(pool, "instances", instance_from_row).await?,
            console_logs: select_all(pool, "console_logs", console_log_from_row).await?,
            signing_keys: select_all(pool, "signing_keys", signing_key_from_row).await?,
            api_keys: select_all(pool, "api_keys", api_key_from_row).await?,
            images: select_all(pool, "images", image_from_row).await?,
            revoked_tokens: select_all(pool, "revoked_tokens", revoked_token_from_row).await?,
            service_accounts: select_all(pool, "service_accounts", service_account_from_row)
                .await?,
            credentials: select_all(pool, "service_account_credentials", credential_from_row)
                .await?,
            audit_events: select_all(pool, "audit_events", audit_event_from_row).await?,
        })
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<()> {
        ensure_empty(self.row_counts().await?)?;
        transaction!(self, SERIALIZABLE, |tx| {
            for (key, value) in &snapshot.settings {
                sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
            for org in &snapshot.organizations {
                insert_organization(&mut *tx, org).await?;
            }
            for project in &snapshot.projects {
                insert_project(&mut *tx, project).await?;
            }
            for host in &snapshot.hosts {
                insert_host(&mut *tx, host).await?;
            }
            for instance in &snapshot.instances {
                insert_instance(&mut *tx, instance).await?;
            }
            for log in &snapshot.console_logs {
                insert_console_log(&mut *tx, log).await?;
            }
            for key in &snapshot.signing_keys {
                insert_signing_key(&mut *tx, key).await?;
            }
            for key in &snapshot.api_keys {
                insert_api_key(&mut *tx, key).await?;
            }
            for image in &snapshot.images {
                bind_image(sqlx::query(IMAGE_INSERT), image)
                    .execute(&mut *tx)
                    .await?;
            }
            for token in &snapshot.revoked_tokens {
                insert_revoked_token(&mut *tx, token).await?;
            }
            for account in &snapshot.service_accounts {
                insert_service_account(&mut *tx, account).await?;
            }
            for credential in &snapshot.credentials {
                insert_credential(&mut *tx, credential).await?;
            }
            for event in &snapshot.audit_events {
                insert_audit_event(&mut *tx, event).await?;
            }
        })
    }

    fn follow_changes(&self, changes: crate::Changes) {
        tokio::spawn(follow(self.pool.clone(), changes));
    }

    async fn row_counts(&self) -> Result<BTreeMap<String, u64>> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name NOT LIKE '\\_sqlx\\_%' ORDER BY table_name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut counts = BTreeMap::new();
        for table in tables {
            // `table` comes from the schema itself.
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{table}\""
            )))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            counts.insert(table, n as u64);
        }
        Ok(counts)
    }
}

async fn insert_revoked_token<'c>(
    db: impl PgExecutor<'c>,
    token: &RevokedTokenRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&token.jti)
    .bind(ms(token.expires_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_service_account<'c>(
    db: impl PgExecutor<'c>,
    a: &ServiceAccountRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO service_accounts (uid, id, client_id, organization_id, display_name, \
         description, scope, scope_id, roles, status, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(a.uid)
    .bind(&a.id)
    .bind(&a.client_id)
    .bind(&a.organization_id)
    .bind(&a.display_name)
    .bind(&a.description)
    .bind(&a.scope)
    .bind(&a.scope_id)
    .bind(to_json(&a.roles))
    .bind(&a.status)
    .bind(&a.created_by)
    .bind(ms(a.created_at))
    .bind(ms(a.updated_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_credential<'c>(db: impl PgExecutor<'c>, c: &CredentialRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO service_account_credentials (uid, id, service_account_id, secret_hash, \
         expires_at, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.uid)
    .bind(&c.id)
    .bind(&c.service_account_id)
    .bind(&c.secret_hash)
    .bind(c.expires_at.map(ms))
    .bind(ms(c.created_at))
    .bind(c.last_used_at.map(ms))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_audit_event<'c>(db: impl PgExecutor<'c>, e: &AuditEventRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, principal, principal_type, organization_id, \
         credential_id, method, path, status, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&e.id)
    .bind(ms(e.at))
    .bind(&e.principal)
    .bind(&e.principal_type)
    .bind(&e.organization_id)
    .bind(&e.credential_id)
    .bind(&e.method)
    .bind(&e.path)
    .bind(i64::from(e.status))
    .bind(&e.request_id)
    .execute(db)
    .await
    .map(drop)
}
