//! The embedded SQLite backend: one file in the data directory, WAL, one writer connection.

use crate::records::*;
use crate::rows::*;
use crate::{Page, PageRequest, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteExecutor, Transaction};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use stratus_core::placement::{Demand, choose_host};
use stratus_core::selector::LabelSelector;
use stratus_core::{Error, Result};
use stratus_types::InstanceStatus;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store. Reads use a small pool; writes go through a single connection so that
/// write transactions queue instead of failing on locks.
#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) `stratus.db` in `data_dir` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(db_error)?
            .filename(data_dir.join("stratus.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&write)
            .await
            .map_err(|e| Error::internal(format!("migrating the database: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        Ok(Self { read, write })
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }
}

impl_columns!(
    SqliteRow,
    db_error,
    |row: &SqliteRow, col: &str| parse_uuid(col, &Columns::text(row, col)?),
    |row: &SqliteRow, col: &str| Columns::opt_text(row, col)?
        .map(|text| parse_uuid(col, &text))
        .transpose()
);

fn db_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::Unavailable(format!("the database is unavailable: {e}"))
        }
        other => Error::internal(format!("database: {other}")),
    }
}

/// Maps a unique-key violation to the caller's "already exists" error, anything else as usual.
fn unique_or(e: sqlx::Error, already_exists: impl FnOnce() -> Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => already_exists(),
        _ => db_error(e),
    }
}

/// The one row `sql` finds for `key`, mapped.
async fn fetch_by<T>(
    pool: &SqlitePool,
    sql: &'static str,
    key: &str,
    map: fn(&SqliteRow) -> Result<T>,
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

const IMAGE_INSERT: &str = "INSERT INTO images (uid, id, display_name, description, os, format, \
     size_bytes, min_disk_gb, status, status_message, source, sha256, file, bytes_done, generation, \
     created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn bind_image<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    i: &'q ImageRecord,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(i.uid.to_string())
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

/// Reads one page of an id-ordered collection (see [`page_from_batches`]). `select` ends in
/// a WHERE clause whose placeholders `binds` fill; the cursor and the batch size follow as
/// two more.
async fn scan_page<T>(
    pool: &SqlitePool,
    select: &str,
    binds: &[&str],
    page: &PageRequest,
    map: fn(&SqliteRow) -> Result<T>,
    id_of: fn(&T) -> &str,
    keep: &(dyn Fn(&T) -> bool + Send + Sync),
) -> Result<Page<T>> {
    // `select` is one of this module's constant queries; values go in as binds.
    let sql = format!("{select} AND id > ? ORDER BY id LIMIT ?");
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

#[async_trait]
impl Store for SqliteStore {
    async fn setting_or_init(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(stored)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)
    }

    async fn create_organization(&self, org: &OrganizationRecord) -> Result<()> {
        insert_organization(&self.write, org).await.map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("organization {} already exists", org.id))
            })
        })?;
        Ok(())
    }

    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM organizations WHERE id = ?",
            id,
            organization_from_row,
        )
        .await
    }

    async fn list_organizations(&self, page: &PageRequest) -> Result<Page<OrganizationRecord>> {
        scan_page(
            &self.read,
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
            "UPDATE organizations SET display_name = ?, description = ?, updated_at = ?, \
             generation = generation + 1 WHERE id = ? AND generation = ? RETURNING *",
        )
        .bind(&org.display_name)
        .bind(&org.description)
        .bind(ms(org.updated_at))
        .bind(&org.id)
        .bind(org.generation)
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn delete_organization(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let projects: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE organization_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if projects > 0 {
            return Err(Error::FailedPrecondition(format!(
                "organization {id} still has {projects} projects; delete them first"
            )));
        }
        let deleted = sqlx::query("DELETE FROM organizations WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }

    async fn create_project(&self, project: &ProjectRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        let org_exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?")
                .bind(&project.organization_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if org_exists.is_none() {
            return Err(Error::invalid(
                "organizationId",
                format!("organization {} does not exist", project.organization_id),
            ));
        }
        insert_project(&mut *tx, project).await.map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("project {} already exists", project.id))
            })
        })?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM projects WHERE id = ?",
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
        match organization_id {
            Some(org) => {
                scan_page(
                    &self.read,
                    "SELECT * FROM projects WHERE organization_id = ?",
                    &[org],
                    page,
                    project_from_row,
                    |p| &p.id,
                    &|_| true,
                )
                .await
            }
            None => {
                scan_page(
                    &self.read,
                    "SELECT * FROM projects WHERE 1 = 1",
                    &[],
                    page,
                    project_from_row,
                    |p| &p.id,
                    &|_| true,
                )
                .await
            }
        }
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<Option<ProjectRecord>> {
        sqlx::query(
            "UPDATE projects SET display_name = ?, description = ?, updated_at = ?, \
             generation = generation + 1 WHERE id = ? AND generation = ? RETURNING *",
        )
        .bind(&project.display_name)
        .bind(&project.description)
        .bind(ms(project.updated_at))
        .bind(&project.id)
        .bind(project.generation)
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(project_from_row)
        .transpose()
    }

    async fn delete_project(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let instances: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE project = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if instances > 0 {
            return Err(Error::FailedPrecondition(format!(
                "project {id} still has {instances} instances; delete them first"
            )));
        }
        let deleted = sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }

    async fn register_host(&self, host: &HostRegistrationRecord) -> Result<HostRecord> {
        let row = sqlx::query(
            "INSERT INTO hosts (id, name, zone, driver, vcpus, memory_mb, gpus, registered_at, last_seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, driver = excluded.driver, \
             vcpus = excluded.vcpus, memory_mb = excluded.memory_mb, gpus = excluded.gpus, \
             last_seen_at = excluded.last_seen_at RETURNING *",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&host.name)
        .bind(&host.zone)
        .bind(&host.driver)
        .bind(host.vcpus as i64)
        .bind(host.memory_mb as i64)
        .bind(to_json(&host.gpus))
        .bind(ms(host.now))
        .bind(ms(host.now))
        .fetch_one(&self.write)
        .await
        .map_err(db_error)?;
        host_from_row(&row)
    }

    async fn touch_host(&self, host_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE hosts SET last_seen_at = ? WHERE id = ?")
            .bind(ms(now))
            .bind(host_id.to_string())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_hosts(&self) -> Result<Vec<HostRecord>> {
        sqlx::query("SELECT * FROM hosts ORDER BY name")
            .fetch_all(&self.read)
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
        let mut tx = self.begin().await?;
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM instances WHERE project = ? AND id = ?")
                .bind(&instance.project)
                .bind(&instance.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if taken.is_some() {
            return Err(already_exists(instance));
        }
        let hosts: Vec<HostRecord> =
            sqlx::query("SELECT * FROM hosts WHERE zone = ? AND last_seen_at >= ?")
                .bind(&instance.zone)
                .bind(ms(live_since))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
                .iter()
                .map(host_from_row)
                .collect::<Result<_>>()?;
        let sums = sqlx::query(USAGE_BY_HOST)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let gpu_sums = sqlx::query(GPU_USAGE_BY_HOST)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let usage = host_usage(&hosts, &sums, &gpu_sums)?;
        let host_id = choose_host(&instance.zone, demand, &usage)?;
        let mut placed = instance.clone();
        placed.host_id = Some(host_id);
        let row = insert_instance(&mut *tx, &placed)
            .await
            .map_err(|e| unique_or(e, || already_exists(instance)))?;
        let stored = instance_from_row(&row)?;
        tx.commit().await.map_err(db_error)?;
        Ok(stored)
    }

    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRecord>> {
        sqlx::query("SELECT * FROM instances WHERE project = ? AND id = ?")
            .bind(project)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(instance_from_row)
            .transpose()
    }

    async fn get_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM instances WHERE uid = ?",
            &uid.to_string(),
            instance_from_row,
        )
        .await
    }

    async fn list_instances(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceRecord>> {
        scan_page(
            &self.read,
            "SELECT * FROM instances WHERE project = ?",
            &[project],
            page,
            instance_from_row,
            |i| &i.id,
            &|i: &InstanceRecord| selector.matches(&i.spec.labels),
        )
        .await
    }

    async fn update_instance(&self, instance: &InstanceRecord) -> Result<Option<InstanceRecord>> {
        sqlx::query(
            "UPDATE instances SET host_id = ?, spec = ?, desired = ?, status = ?, status_message = ?, \
             status_changed_at = ?, updated_at = ?, generation = generation + 1 \
             WHERE uid = ? AND generation = ? RETURNING *",
        )
        .bind(instance.host_id.map(|h| h.to_string()))
        .bind(to_json(&instance.spec))
        .bind(instance.desired.as_str())
        .bind(instance.status.as_str())
        .bind(&instance.status_message)
        .bind(ms(instance.status_changed_at))
        .bind(ms(instance.updated_at))
        .bind(instance.uid.to_string())
        .bind(instance.generation)
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(instance_from_row)
        .transpose()
    }

    async fn finalize_instance_deletion(&self, uid: Uuid) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM instances WHERE uid = ? AND desired = 'DELETED'")
            .bind(uid.to_string())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn list_instances_on_host(&self, host_id: Uuid) -> Result<Vec<InstanceRecord>> {
        sqlx::query("SELECT * FROM instances WHERE host_id = ? ORDER BY uid")
            .bind(host_id.to_string())
            .fetch_all(&self.read)
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
        let mut found = Vec::new();
        for status in statuses {
            let rows =
                sqlx::query("SELECT * FROM instances WHERE status = ? AND status_changed_at < ?")
                    .bind(status.as_str())
                    .bind(ms(before))
                    .fetch_all(&self.read)
                    .await
                    .map_err(db_error)?;
            for row in &rows {
                found.push(instance_from_row(row)?);
            }
        }
        Ok(found)
    }

    async fn claim_instance_lease(
        &self,
        uid: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE instances SET lease_owner = ?, lease_expires_at = ? WHERE uid = ? \
             AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
        )
        .bind(owner)
        .bind(ms(until))
        .bind(uid.to_string())
        .bind(owner)
        .bind(ms(now))
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(claimed > 0)
    }

    async fn release_instance_lease(&self, uid: Uuid, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE uid = ? AND lease_owner = ?",
        )
        .bind(uid.to_string())
        .bind(owner)
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn count_instances(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
            .fetch_one(&self.read)
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
            .fetch_one(&self.write)
            .await
            .map_err(db_error)?;
        image_from_row(&row)
    }

    async fn create_image(&self, image: &ImageRecord) -> Result<()> {
        bind_image(sqlx::query(IMAGE_INSERT), image)
            .execute(&self.write)
            .await
            .map_err(|e| {
                unique_or(e, || {
                    Error::AlreadyExists(format!("image {} already exists", image.id))
                })
            })?;
        Ok(())
    }

    async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM images WHERE id = ?",
            id,
            image_from_row,
        )
        .await
    }

    async fn list_images(&self, page: &PageRequest) -> Result<Page<ImageRecord>> {
        scan_page(
            &self.read,
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
            "UPDATE images SET display_name = ?, description = ?, os = ?, size_bytes = ?, \
             min_disk_gb = ?, status = ?, status_message = ?, sha256 = ?, file = ?, bytes_done = ?, \
             updated_at = ?, generation = generation + 1 WHERE id = ? AND generation = ? RETURNING *",
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
        .fetch_optional(&self.write)
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
            "UPDATE images SET lease_owner = ?, lease_expires_at = ? WHERE id = ? \
             AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
        )
        .bind(owner)
        .bind(ms(until))
        .bind(id)
        .bind(owner)
        .bind(ms(now))
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(claimed > 0)
    }

    async fn release_image_lease(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE images SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn delete_image(&self, id: &str, self_link: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE instr(spec, ?) > 0")
                .bind(format!("\"source\":\"{self_link}\""))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if users > 0 {
            return Err(Error::FailedPrecondition(format!(
                "image {id} is the source of {users} instances' disks; delete them first"
            )));
        }
        let deleted = sqlx::query("DELETE FROM images WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }

    async fn append_console(&self, uid: Uuid, at: u64, bytes: &[u8], keep: u64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let row =
            sqlx::query("SELECT base_offset, content FROM console_logs WHERE instance_uid = ?")
                .bind(uid.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let (mut base, mut content): (u64, Vec<u8>) = match &row {
            Some(r) => (
                r.try_get::<i64, _>("base_offset").map_err(db_error)? as u64,
                r.try_get("content").map_err(db_error)?,
            ),
            None => (0, Vec::new()),
        };
        let end = base + content.len() as u64;
        if at != end || bytes.is_empty() {
            return Ok(end);
        }
        content.extend_from_slice(bytes);
        if content.len() as u64 > keep {
            let drop = content.len() - keep as usize;
            content.drain(..drop);
            base += drop as u64;
        }
        let written = sqlx::query(
            "INSERT INTO console_logs (instance_uid, base_offset, content) \
             SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM instances WHERE uid = ?) \
             ON CONFLICT (instance_uid) DO UPDATE SET base_offset = excluded.base_offset, \
             content = excluded.content",
        )
        .bind(uid.to_string())
        .bind(base as i64)
        .bind(&content)
        .bind(uid.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(if written > 0 {
            base + content.len() as u64
        } else {
            end
        })
    }

    async fn read_console(&self, uid: Uuid, start: u64, max: u64) -> Result<(u64, Vec<u8>, u64)> {
        let row =
            sqlx::query("SELECT base_offset, content FROM console_logs WHERE instance_uid = ?")
                .bind(uid.to_string())
                .fetch_optional(&self.read)
                .await
                .map_err(db_error)?;
        let Some(row) = row else {
            return Ok((0, Vec::new(), 0));
        };
        let base = row.try_get::<i64, _>("base_offset").map_err(db_error)? as u64;
        let content: Vec<u8> = row.try_get("content").map_err(db_error)?;
        let end = base + content.len() as u64;
        let from = start.clamp(base, end);
        let to = (from + max).min(end);
        let slice = content[(from - base) as usize..(to - base) as usize].to_vec();
        Ok((from, slice, to))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at")
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn init_signing_key(&self, key: &SigningKeyRecord) -> Result<Vec<SigningKeyRecord>> {
        let mut tx = self.begin().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if existing == 0 {
            insert_signing_key(&mut *tx, key).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.list_signing_keys().await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        insert_api_key(&self.write, key).await.map_err(|e| {
            unique_or(e, || {
                Error::AlreadyExists(format!("API key {} already exists", key.id))
            })
        })?;
        Ok(())
    }

    async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM api_keys WHERE secret_hash = ?1 OR previous_secret_hash = ?1",
            secret_hash,
            api_key_from_row,
        )
        .await
    }

    async fn touch_api_key(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE uid = ?")
            .bind(ms(now))
            .bind(uid.to_string())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM api_keys WHERE id = ?",
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
                "SELECT * FROM api_keys WHERE organization_id = ? AND created_by = ?",
                vec![org, by],
            ),
            (Some(org), None) => (
                "SELECT * FROM api_keys WHERE organization_id = ?",
                vec![org],
            ),
            (None, Some(by)) => ("SELECT * FROM api_keys WHERE created_by = ?", vec![by]),
            (None, None) => ("SELECT * FROM api_keys WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.read,
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
            "UPDATE api_keys SET display_name = ?, roles = ?, status = ?, secret_hash = ?, \
             previous_secret_hash = ?, previous_secret_expires_at = ?, last_rotated_at = ? \
             WHERE uid = ? RETURNING *",
        )
        .bind(&key.display_name)
        .bind(to_json(&key.roles))
        .bind(&key.status)
        .bind(&key.secret_hash)
        .bind(&key.previous_secret_hash)
        .bind(key.previous_secret_expires_at.map(ms))
        .bind(key.last_rotated_at.map(ms))
        .bind(key.uid.to_string())
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn delete_api_key(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn revoke_token(&self, token: &RevokedTokenRecord) -> Result<()> {
        insert_revoked_token(&self.write, token)
            .await
            .map_err(db_error)
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE jti = ?")
                .bind(jti)
                .fetch_optional(&self.read)
                .await
                .map_err(db_error)?;
        Ok(found.is_some())
    }

    async fn create_service_account(&self, account: &ServiceAccountRecord) -> Result<()> {
        insert_service_account(&self.write, account)
            .await
            .map_err(|e| {
                unique_or(e, || {
                    Error::AlreadyExists(format!("service account {} already exists", account.id))
                })
            })
    }

    async fn get_service_account(&self, id: &str) -> Result<Option<ServiceAccountRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM service_accounts WHERE id = ?",
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
            &self.read,
            "SELECT * FROM service_accounts WHERE client_id = ?",
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
                "SELECT * FROM service_accounts WHERE organization_id = ?",
                vec![org],
            ),
            None => ("SELECT * FROM service_accounts WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.read,
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
            "UPDATE service_accounts SET display_name = ?, description = ?, roles = ?, \
             status = ?, updated_at = ? WHERE id = ? RETURNING *",
        )
        .bind(&account.display_name)
        .bind(&account.description)
        .bind(to_json(&account.roles))
        .bind(&account.status)
        .bind(ms(account.updated_at))
        .bind(&account.id)
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(service_account_from_row)
        .transpose()
    }

    async fn delete_service_account(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM service_accounts WHERE id = ?")
            .bind(id)
            .execute(&self.write)
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
        let mut tx = self.begin().await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM service_account_credentials WHERE service_account_id = ? \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(&credential.service_account_id)
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if active as usize >= max_active {
            return Err(too_many_credentials(max_active));
        }
        insert_credential(&mut *tx, credential)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn list_credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRecord>> {
        sqlx::query(
            "SELECT * FROM service_account_credentials WHERE service_account_id = ? ORDER BY id",
        )
        .bind(service_account_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM service_account_credentials WHERE id = ?",
            id,
            credential_from_row,
        )
        .await
    }

    async fn find_credential_by_hash(&self, secret_hash: &str) -> Result<Option<CredentialRecord>> {
        fetch_by(
            &self.read,
            "SELECT * FROM service_account_credentials WHERE secret_hash = ?",
            secret_hash,
            credential_from_row,
        )
        .await
    }

    async fn touch_credential(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE service_account_credentials SET last_used_at = ? WHERE uid = ?")
            .bind(ms(now))
            .bind(uid.to_string())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_credential(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM service_account_credentials WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn record_audit_event(&self, event: &AuditEventRecord) -> Result<()> {
        insert_audit_event(&self.write, event)
            .await
            .map_err(db_error)
    }

    async fn prune_audit_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Event ids start with their time in zero-padded milliseconds: the key orders by time.
        let bound = format!("{:013}", before.timestamp_millis());
        sqlx::query("DELETE FROM audit_events WHERE id < ?")
            .bind(bound)
            .execute(&self.write)
            .await
            .map(|done| done.rows_affected())
            .map_err(db_error)
    }

    async fn prune_revoked_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
            .bind(ms(now))
            .execute(&self.write)
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
                "SELECT * FROM audit_events WHERE organization_id = ?",
                vec![org],
            ),
            None => ("SELECT * FROM audit_events WHERE 1 = 1", vec![]),
        };
        scan_page(
            &self.read,
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
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        Ok(Snapshot {
            settings,
            organizations: select_all(&self.read, "organizations", organization_from_row).await?,
            projects: select_all(&self.read, "projects", project_from_row).await?,
            hosts: select_all(&self.read, "hosts", host_from_row).await?,
            instances: select_all(&self.read, "instances", instance_from_row).await?,
            console_logs: select_all(&self.read, "console_logs", console_log_from_row).await?,
            signing_keys: select_all(&self.read, "signing_keys", signing_key_from_row).await?,
            api_keys: select_all(&self.read, "api_keys", api_key_from_row).await?,
            images: select_all(&self.read, "images", image_from_row).await?,
            revoked_tokens: select_all(&self.read, "revoked_tokens", revoked_token_from_row)
                .await?,
            service_accounts: select_all(&self.read, "service_accounts", service_account_from_row)
                .await?,
            credentials: select_all(
                &self.read,
                "service_account_credentials",
                credential_from_row,
            )
            .await?,
            audit_events: select_all(&self.read, "audit_events", audit_event_from_row).await?,
        })
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<()> {
        let mut tx = self.begin().await?;
        ensure_empty(self.row_counts().await?)?;
        for (key, value) in &snapshot.settings {
            sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?)")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for org in &snapshot.organizations {
            insert_organization(&mut *tx, org).await.map_err(db_error)?;
        }
        for project in &snapshot.projects {
            insert_project(&mut *tx, project).await.map_err(db_error)?;
        }
        for host in &snapshot.hosts {
            insert_host(&mut *tx, host).await.map_err(db_error)?;
        }
        for instance in &snapshot.instances {
            insert_instance(&mut *tx, instance)
                .await
                .map_err(db_error)?;
        }
        for log in &snapshot.console_logs {
            insert_console_log(&mut *tx, log).await.map_err(db_error)?;
        }
        for key in &snapshot.signing_keys {
            insert_signing_key(&mut *tx, key).await.map_err(db_error)?;
        }
        for key in &snapshot.api_keys {
            insert_api_key(&mut *tx, key).await.map_err(db_error)?;
        }
        for image in &snapshot.images {
            bind_image(sqlx::query(IMAGE_INSERT), image)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for token in &snapshot.revoked_tokens {
            insert_revoked_token(&mut *tx, token)
                .await
                .map_err(db_error)?;
        }
        for account in &snapshot.service_accounts {
            insert_service_account(&mut *tx, account)
                .await
                .map_err(db_error)?;
        }
        for credential in &snapshot.credentials {
            insert_credential(&mut *tx, credential)
                .await
                .map_err(db_error)?;
        }
        for event in &snapshot.audit_events {
            insert_audit_event(&mut *tx, event)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn row_counts(&self) -> Result<BTreeMap<String, u64>> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        let mut counts = BTreeMap::new();
        for table in tables {
            // `table` comes from the schema itself.
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{table}\""
            )))
            .fetch_one(&self.read)
            .await
            .map_err(db_error)?;
            counts.insert(table, n as u64);
        }
        Ok(counts)
    }
}

fn already_exists(instance: &InstanceRecord) -> Error {
    Error::AlreadyExists(format!(
        "instance {} already exists in project {}",
        instance.id, instance.project
    ))
}

async fn insert_organization<'c>(
    db: impl SqliteExecutor<'c>,
    org: &OrganizationRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO organizations (uid, id, display_name, description, generation, created_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(org.uid.to_string())
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

async fn insert_project<'c>(
    db: impl SqliteExecutor<'c>,
    project: &ProjectRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO projects (uid, id, organization_id, display_name, description, generation, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(project.uid.to_string())
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

async fn insert_host<'c>(db: impl SqliteExecutor<'c>, host: &HostRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO hosts (id, name, zone, driver, vcpus, memory_mb, gpus, registered_at, \
         last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(host.id.to_string())
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
    db: impl SqliteExecutor<'c>,
    instance: &InstanceRecord,
) -> sqlx::Result<SqliteRow> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO instances ({INSTANCE_COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *"
    )))
    .bind(instance.uid.to_string())
    .bind(&instance.project)
    .bind(&instance.id)
    .bind(&instance.zone)
    .bind(instance.host_id.map(|h| h.to_string()))
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
    db: impl SqliteExecutor<'c>,
    key: &SigningKeyRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
         VALUES (?, ?, ?, ?, ?)",
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

async fn insert_api_key<'c>(db: impl SqliteExecutor<'c>, key: &ApiKeyRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (uid, id, secret_hash, organization_id, scope, scope_id, roles, \
         created_by, display_name, created_at, last_used_at, status, previous_secret_hash, \
         previous_secret_expires_at, last_rotated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.uid.to_string())
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
    db: impl SqliteExecutor<'c>,
    log: &ConsoleLogRecord,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO console_logs (instance_uid, base_offset, content) VALUES (?, ?, ?)")
        .bind(log.instance_uid.to_string())
        .bind(log.base_offset as i64)
        .bind(&log.content)
        .execute(db)
        .await
        .map(drop)
}

/// Every row of `table`, mapped.
async fn select_all<T>(
    pool: &SqlitePool,
    table: &str,
    map: fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
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

async fn insert_revoked_token<'c>(
    db: impl SqliteExecutor<'c>,
    token: &RevokedTokenRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&token.jti)
    .bind(ms(token.expires_at))
    .execute(db)
    .await
    .map(drop)
}

async fn insert_service_account<'c>(
    db: impl SqliteExecutor<'c>,
    a: &ServiceAccountRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO service_accounts (uid, id, client_id, organization_id, display_name, \
         description, scope, scope_id, roles, status, created_by, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.uid.to_string())
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

async fn insert_credential<'c>(
    db: impl SqliteExecutor<'c>,
    c: &CredentialRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO service_account_credentials (uid, id, service_account_id, secret_hash, \
         expires_at, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.uid.to_string())
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

async fn insert_audit_event<'c>(
    db: impl SqliteExecutor<'c>,
    e: &AuditEventRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, principal, principal_type, organization_id, \
         credential_id, method, path, status, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
