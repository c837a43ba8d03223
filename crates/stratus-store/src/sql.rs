//! The store, written once in SQL both databases run (see [`crate::engine`] for where they
//! differ).

use crate::addressing;
use crate::engine::{
    Arg, DbError, DbResult, Engine, Isolation, Row, Tx, UniqueOr, args, transaction,
};
use crate::rows::*;
use crate::{Admission, Changes, Page, PageRequest, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use stratus_core::placement::{Demand, HostUsage};
use stratus_core::quota;
use stratus_core::selector::LabelSelector;
use stratus_core::{Error, Result};
use stratus_types::InstanceStatus;
use uuid::Uuid;

use crate::records::*;

/// The region's state in a SQL database.
#[derive(Clone)]
pub struct SqlStore {
    engine: Arc<dyn Engine>,
    /// What GETs read, kept in memory ([`crate::cache`]).
    cache: Arc<crate::cache::ReadCache>,
    /// Where committed instance writes are published ([`crate::feed`]).
    log: Arc<crate::feed::ChangeLog>,
    /// The writer that commits creates, instance updates, heartbeats and audit events in
    /// groups ([`crate::group_commit`]).
    writer: tokio::sync::mpsc::UnboundedSender<crate::group_commit::Job>,
}

impl SqlStore {
    /// The store over `engine`, once rows of an earlier schema are brought to the current one.
    pub(crate) async fn open(engine: Box<dyn Engine>) -> Result<Self> {
        let database = engine.name();
        // Other replicas may write to a PostgreSQL database; SQLite has this process alone.
        let shared = database == "postgres";
        let engine: Arc<dyn Engine> = Arc::new(crate::metered::Metered { engine, database });
        let cache = Arc::new(crate::cache::ReadCache::new(shared));
        let log = crate::feed::ChangeLog::new(cache.clone());
        let writer = crate::group_commit::start(engine.clone(), log.clone())?;
        let store = Self {
            engine,
            cache,
            log,
            writer,
        };
        store.move_metadata_out_of_specs().await?;
        Ok(store)
    }

    /// Queues `job` for the group writer and waits for its answer on `answered`.
    async fn queued<T>(
        &self,
        job: crate::group_commit::Job,
        answered: tokio::sync::oneshot::Receiver<Result<T>>,
    ) -> Result<T> {
        let closing = || Error::Unavailable("the store is shutting down".into());
        self.writer.send(job).map_err(|_| closing())?;
        answered.await.map_err(|_| closing())?
    }

    /// Fills the columns an instance's spec gives (its metadata, the disk it holds) for rows
    /// written before they existed, a batch at a time (a no-op once done).
    async fn move_metadata_out_of_specs(&self) -> Result<()> {
        loop {
            let batch: Vec<InstanceRecord> = self
                .select(
                    "SELECT * FROM instances WHERE metadata IS NULL OR disk_gb IS NULL LIMIT 100",
                    vec![],
                )
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            for instance in &batch {
                let values = spec_values(&instance.spec);
                let sets: Vec<String> = values.iter().map(|(c, _)| format!("{c} = ?")).collect();
                let mut args: Vec<Arg> = values.into_iter().map(|(_, a)| a).collect();
                args.push(instance.uid.into());
                let sql = format!("UPDATE instances SET {} WHERE uid = ?", sets.join(", "));
                self.db().execute(&sql, args).await?;
            }
            tracing::info!(
                instances = batch.len(),
                "moved instance metadata and disk sizes into their own columns"
            );
        }
    }

    fn db(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// The rows `sql` finds, as records.
    async fn select<T: Table>(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>> {
        records(&self.db().query(sql, args).await?)
    }

    /// The one row `sql` finds, if any, as a record.
    async fn select_one<T: Table>(&self, sql: &str, args: Vec<Arg>) -> Result<Option<T>> {
        Ok(self.select(sql, args).await?.into_iter().next())
    }

    /// The record of `T` whose `col` is `key`.
    async fn by<T: Table>(&self, col: &str, key: impl Into<Arg>) -> Result<Option<T>> {
        let sql = format!("SELECT * FROM {} WHERE {col} = ?", T::NAME);
        self.select_one(&sql, vec![key.into()]).await
    }

    /// One page of `T`, only those whose `col` is `value` when it is given.
    async fn page_where<T: Listed>(
        &self,
        col: &str,
        value: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<T>> {
        match value {
            Some(value) => {
                let filter = format!("{col} = ?");
                self.page(&filter, args![value], page, &|_| true).await
            }
            None => self.page("1 = 1", vec![], page, &|_| true).await,
        }
    }

    /// Inserts `record` outside a transaction; a taken unique key is `already_exists()`.
    async fn insert<T: Table>(
        &self,
        record: &T,
        already_exists: impl FnOnce() -> Error,
    ) -> Result<()> {
        let (sql, args) = insert(record);
        self.db()
            .execute(&sql, args)
            .await
            .unique_or(already_exists)
            .map(drop)
    }

    /// The guarded update of `instance` (of its lifecycle alone when `status_only`), queued
    /// for the writer, which forgets the cached row and publishes the change after its commit.
    async fn queued_update(
        &self,
        instance: &InstanceRecord,
        status_only: bool,
    ) -> Result<Option<InstanceRecord>> {
        let (reply, stored) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::UpdateJob {
            instance: instance.clone(),
            status_only,
            reply,
            span: tracing::Span::current(),
        };
        self.queued(crate::group_commit::Job::Update(job), stored)
            .await
    }

    /// Writes `set` (columns and values) to the row of `T` whose `key` column is `key`, if
    /// its generation is still `generation`, bumping it; `None` when someone else wrote first
    /// (or the row is gone).
    async fn guarded_update<T: Table>(
        &self,
        set: Vec<(&str, Arg)>,
        key: (&str, Arg),
        generation: i64,
    ) -> Result<Option<T>> {
        let (sql, args) = guarded::<T>(set, key, generation, "*");
        self.select_one(&sql, args).await
    }

    /// Writes `set` to the row of `T` whose `key` column is `key`, unconditionally.
    async fn update<T: Table>(&self, set: Vec<(&str, Arg)>, key: (&str, Arg)) -> Result<Option<T>> {
        let assignments: Vec<String> = set.iter().map(|(col, _)| format!("{col} = ?")).collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ? RETURNING *",
            T::NAME,
            assignments.join(", "),
            key.0
        );
        let mut args: Vec<Arg> = set.into_iter().map(|(_, arg)| arg).collect();
        args.push(key.1);
        self.select_one(&sql, args).await
    }

    /// Deletes the rows `sql` names; whether there were any.
    async fn delete(&self, sql: &str, args: Vec<Arg>) -> Result<bool> {
        Ok(self.db().execute(sql, args).await? > 0)
    }

    /// Deletes the row of `T` whose id is `id`, unless `users` (a `COUNT(*) AS n` whose one
    /// `?` takes `user_key`) still finds rows using it: then `in_use(n)` is the error.
    async fn delete_unused<T: Table>(
        &self,
        id: &str,
        users: &str,
        user_key: &str,
        in_use: impl Fn(i64) -> Error + Send + Sync,
    ) -> Result<bool> {
        let delete = format!("DELETE FROM {} WHERE id = ?", T::NAME);
        let deleted = transaction!(self.db(), Isolation::Serializable, |tx| {
            let n = count(&mut tx, users, args![user_key]).await?;
            if n > 0 {
                return Err(in_use(n).into());
            }
            tx.execute(&delete, args![id]).await? > 0
        })?;
        Ok(deleted)
    }

    /// Takes a lease on the row of `table` whose `key` is `key` when it is free, expired or
    /// already `owner`'s.
    async fn claim_lease(
        &self,
        table: &str,
        key: (&str, Arg),
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE {table} SET lease_owner = ?, lease_expires_at = ? WHERE {} = ? \
             AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
            key.0
        );
        let args = vec![
            owner.into(),
            ms(until).into(),
            key.1,
            owner.into(),
            ms(now).into(),
        ];
        Ok(self.db().execute(&sql, args).await? > 0)
    }

    async fn release_lease(&self, table: &str, key: (&str, Arg), owner: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {table} SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE {} = ? AND lease_owner = ?",
            key.0
        );
        self.db().execute(&sql, vec![key.1, owner.into()]).await?;
        Ok(())
    }

    /// The condition (with its values) selecting `project`'s instances that `selector` may
    /// select, and how a page reads them. Rows that cannot match are left in the database:
    /// each required `key=value` must be in the instance's labels column, as JSON containment
    /// where the database indexes that, else as the JSON pair it is (when JSON writes both as
    /// they are); the selector itself then decides on what comes back.
    fn instance_filter(
        &self,
        project: &str,
        selector: &LabelSelector,
    ) -> (String, Vec<Arg>, Fetch) {
        let mut filter = "project = ?".to_owned();
        let mut values = args![project];
        let mut fetch = Fetch::Rows;
        let pairs: Vec<(&str, &str)> = selector.required_pairs().collect();
        if self.db().labels_by_containment() {
            if !pairs.is_empty() {
                let wanted: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string().into()))
                    .collect();
                filter.push_str(" AND NULLIF(labels, '')::jsonb @> ?::jsonb");
                values.push(serde_json::Value::Object(wanted).to_string().into());
                fetch = Fetch::KeysFirst;
            }
        } else {
            let plain = |t: &str| {
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            };
            for (key, value) in pairs {
                if plain(key) && plain(value) {
                    filter.push_str(" AND labels LIKE ? ESCAPE '\\'");
                    values.push(contains_pattern(&format!("\"{key}\":\"{value}\"")).into());
                    fetch = Fetch::KeysFirst;
                }
            }
        }
        (filter, values, fetch)
    }

    /// One page of `T` in id order, among the rows `filter` (a condition with `?`s that
    /// `args` fill, or `1 = 1`) selects, keeping those `keep` accepts. Rows are read in keyset
    /// batches, so a filtered page never reads a whole table into memory.
    async fn page<T: Listed>(
        &self,
        filter: &str,
        args: Vec<Arg>,
        page: &PageRequest,
        keep: &(dyn Fn(&T) -> bool + Send + Sync),
    ) -> Result<Page<T>> {
        self.page_by(filter, args, page, keep, Fetch::Rows).await
    }

    /// Like [`SqlStore::page`]; with [`Fetch::KeysFirst`] each batch first reads the ids that
    /// `filter` keeps (from an index that covers it), then only those rows.
    async fn page_by<T: Listed>(
        &self,
        filter: &str,
        args: Vec<Arg>,
        page: &PageRequest,
        keep: &(dyn Fn(&T) -> bool + Send + Sync),
        fetch: Fetch,
    ) -> Result<Page<T>> {
        let id = self.db().id_in_byte_order();
        let sql = match fetch {
            Fetch::Rows => format!(
                "SELECT {} FROM {} WHERE {filter} AND {id} > ? ORDER BY {id} LIMIT ?",
                T::COLUMNS,
                T::NAME
            ),
            Fetch::KeysFirst => format!(
                "SELECT {id} AS id FROM {} WHERE {filter} AND {id} > ? ORDER BY {id} LIMIT ?",
                T::NAME
            ),
        };
        let limit = page.limit as usize;
        let mut to_skip = page.offset.unwrap_or(0);
        let counting = page.offset.is_some() || page.with_total;
        let batch = (limit + 1).max(if counting { 500 } else { 0 });
        let mut cursor = page.after.clone().unwrap_or_default();
        let (mut items, mut more, mut total) = (Vec::new(), false, 0u64);
        loop {
            let mut batch_args = args.clone();
            batch_args.push(cursor.clone().into());
            batch_args.push((batch as i64).into());
            // The rows, how many the batch's query read (a short batch is the last), and the id
            // the next batch goes on after.
            let (fetched, read, last): (Vec<T>, usize, Option<String>) = match fetch {
                Fetch::Rows => {
                    let rows: Vec<T> = self.select(&sql, batch_args).await?;
                    let last = rows.last().map(|r| r.id().to_owned());
                    let read = rows.len();
                    (rows, read, last)
                }
                Fetch::KeysFirst => {
                    let ids = self.db().query(&sql, batch_args).await?;
                    let ids = ids
                        .iter()
                        .map(|row| row.text("id"))
                        .collect::<Result<Vec<_>>>()?;
                    let rows = if ids.is_empty() {
                        Vec::new()
                    } else {
                        let marks = vec!["?"; ids.len()].join(", ");
                        let mut row_args = args.clone();
                        row_args.extend(ids.iter().map(|i| Arg::from(i.as_str())));
                        self.select(
                            &format!(
                                "SELECT {} FROM {} WHERE {filter} AND id IN ({marks}) \
                                 ORDER BY {id}",
                                T::COLUMNS,
                                T::NAME
                            ),
                            row_args,
                        )
                        .await?
                    };
                    (rows, ids.len(), ids.last().cloned())
                }
            };
            let exhausted = read < batch;
            for item in fetched {
                if !keep(&item) {
                    continue;
                }
                total += 1;
                if to_skip > 0 {
                    to_skip -= 1;
                } else if items.len() < limit {
                    items.push(item);
                } else {
                    more = true;
                    if !page.with_total {
                        break;
                    }
                }
            }
            if let Some(last) = last {
                cursor = last;
            }
            if exhausted || (more && !page.with_total) {
                break;
            }
        }
        Ok(Page {
            items,
            more,
            total: page.with_total.then_some(total),
        })
    }

    /// Every row of `T`, for an export.
    async fn all<T: Table>(&self) -> Result<Vec<T>> {
        self.select(&format!("SELECT * FROM {} ORDER BY 1", T::NAME), vec![])
            .await
    }
}

/// The statement that writes `set` (columns and values) to the row of `T` whose `key` column is
/// `key` if its generation is still `generation`, bumping it, and returns the row.
fn guarded<T: Table>(
    set: Vec<(&str, Arg)>,
    key: (&str, Arg),
    generation: i64,
    returning: &str,
) -> (String, Vec<Arg>) {
    let assignments: Vec<String> = set.iter().map(|(col, _)| format!("{col} = ?")).collect();
    let sql = format!(
        "UPDATE {} SET {}, generation = generation + 1 WHERE {} = ? AND generation = ? \
         RETURNING {returning}",
        T::NAME,
        assignments.join(", "),
        key.0
    );
    let mut args: Vec<Arg> = set.into_iter().map(|(_, arg)| arg).collect();
    args.push(key.1);
    args.push(generation.into());
    (sql, args)
}

/// The guarded write of everything about an instance that may change (not its host: an
/// instance stays where it was placed, and its host's usage counters rely on that). Its rows
/// give [`written`] what it needs.
pub(crate) fn guarded_update_of(instance: &InstanceRecord) -> (String, Vec<Arg>) {
    guarded::<InstanceRecord>(
        [
            ("desired", instance.desired.as_str().into()),
            ("status", instance.status.as_str().into()),
            ("status_message", (&instance.status_message).into()),
            ("status_changed_at", ms(instance.status_changed_at).into()),
            ("updated_at", ms(instance.updated_at).into()),
            ("traceparent", (&instance.traceparent).into()),
            ("request_id", (&instance.request_id).into()),
        ]
        .into_iter()
        .chain(spec_values(&instance.spec))
        .collect(),
        ("uid", instance.uid.into()),
        instance.generation,
        "generation",
    )
}

/// One statement writing the lifecycle of each of `instances` (its desired state and status,
/// nothing else), each guarded by its own generation; it returns the uid of each row it wrote.
/// No two of `instances` may be the same instance: a row two of them matched would be written
/// once, by either.
pub(crate) fn guarded_status_updates_of(instances: &[&InstanceRecord]) -> (String, Vec<Arg>) {
    let marks = vec!["(?, ?, ?, ?, ?, ?, ?)"; instances.len()].join(", ");
    let mut args = Vec::with_capacity(instances.len() * 7);
    for instance in instances {
        args.extend([
            instance.uid.into(),
            instance.generation.into(),
            instance.desired.as_str().into(),
            instance.status.as_str().into(),
            (&instance.status_message).into(),
            ms(instance.status_changed_at).into(),
            ms(instance.updated_at).into(),
        ]);
    }
    (
        format!(
            "UPDATE instances SET desired = reported.column3, status = reported.column4, \
             status_message = reported.column5, status_changed_at = reported.column6, \
             updated_at = reported.column7, generation = instances.generation + 1 \
             FROM (VALUES {marks}) AS reported \
             WHERE instances.uid = reported.column1 AND instances.generation = reported.column2 \
             RETURNING instances.uid"
        ),
        args,
    )
}

/// The row a guarded update of `instance` wrote, from what the update returned (`None`: it
/// lost its race). The row is `instance` one generation on: the guard held only while the row
/// was still as `instance` was read, and the update wrote everything else that may change;
/// so the row need not be read back (and its spec parsed again).
pub(crate) fn written(instance: &InstanceRecord, rows: &[Row]) -> Option<InstanceRecord> {
    written_if(instance, !rows.is_empty())
}

/// `instance` one generation on, as [`written`] gives it, if `wrote`.
pub(crate) fn written_if(instance: &InstanceRecord, wrote: bool) -> Option<InstanceRecord> {
    wrote.then(|| InstanceRecord {
        generation: instance.generation + 1,
        ..as_stored(instance)
    })
}

/// `instance` as a read of its row gives it back: its times kept to the millisecond.
pub(crate) fn as_stored(instance: &InstanceRecord) -> InstanceRecord {
    use chrono::SubsecRound;
    InstanceRecord {
        status_changed_at: instance.status_changed_at.trunc_subsecs(3),
        created_at: instance.created_at.trunc_subsecs(3),
        updated_at: instance.updated_at.trunc_subsecs(3),
        ..instance.clone()
    }
}

/// Appends `bytes` to the console log of instance `uid` if the log ends at `at`, keeping its
/// last `keep` bytes; returns where the log ends (unchanged when it did not end at `at`, or
/// the instance is gone).
///
/// The log is read, then written only if it is still as read: an append from another replica
/// in between leaves this one unwritten, and the log's end as that left it is answered.
pub(crate) async fn append_in(
    tx: &mut Box<dyn Tx>,
    uid: Uuid,
    at: u64,
    bytes: &[u8],
    keep: u64,
) -> DbResult<u64> {
    let (mut base, mut content) = console_log_in(tx, uid).await?;
    let end = base + content.len() as u64;
    if at != end || bytes.is_empty() {
        return Ok(end);
    }
    let (read_base, read_len) = (base as i64, content.len() as i64);
    content.extend_from_slice(bytes);
    if content.len() as u64 > keep {
        let drop = content.len() - keep as usize;
        content.drain(..drop);
        base += drop as u64;
    }
    let written = tx
        .execute(
            "INSERT INTO console_logs (instance_uid, base_offset, content) \
             SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM instances WHERE uid = ?) \
             ON CONFLICT (instance_uid) DO UPDATE SET \
             base_offset = excluded.base_offset, content = excluded.content \
             WHERE console_logs.base_offset = ? AND length(console_logs.content) = ?",
            args![uid, base as i64, &content, uid, read_base, read_len],
        )
        .await?;
    if written > 0 {
        return Ok(base + content.len() as u64);
    }
    let (base, content) = console_log_in(tx, uid).await?;
    Ok(base + content.len() as u64)
}

/// The console log of instance `uid`: the offset of its first kept byte, and the kept bytes.
async fn console_log_in(tx: &mut Box<dyn Tx>, uid: Uuid) -> DbResult<(u64, Vec<u8>)> {
    let rows = tx
        .query(
            "SELECT * FROM console_logs WHERE instance_uid = ?",
            args![uid],
        )
        .await?;
    Ok(match records::<ConsoleLogRecord>(&rows)?.pop() {
        Some(log) => (log.base_offset, log.content),
        None => (0, Vec::new()),
    })
}

/// Rows as records.
pub(crate) fn records<T: Table>(rows: &[Row]) -> Result<Vec<T>> {
    rows.iter().map(|row| T::from_row(row.as_ref())).collect()
}

/// The count of a `SELECT COUNT(*) AS n …`.
pub(crate) async fn count(tx: &mut Box<dyn Tx>, sql: &str, args: Vec<Arg>) -> DbResult<i64> {
    let rows = tx.query(sql, args).await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::Other(Error::internal("COUNT returned no row")))?;
    Ok(row.int("n")?)
}

/// Locks the organization's row for the rest of `tx` (requests that add to its quotas queue
/// here) and admits `request` on top of what its instances hold.
pub(crate) async fn admit(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    admission: &Admission<'_>,
    request: &quota::Amounts,
) -> DbResult<()> {
    admit_under(tx, engine, admission, &mut Admissions::default(), request).await
}

/// What one transaction learned of organizations' quotas: each organization's own settings
/// (read, and its row locked, once) and what its instances hold (summed once, then counted on
/// as the transaction's creates go in). Forgotten when a savepoint is undone, which may have
/// released the lock and undone what was counted.
#[derive(Default)]
pub(crate) struct Admissions {
    settings: HashMap<String, Option<QuotaRecord>>,
    usage: HashMap<String, quota::Amounts>,
}

impl Admissions {
    /// `amounts` went in for `organization` in this transaction.
    pub(crate) fn count(&mut self, organization: &str, amounts: &quota::Amounts) {
        if let Some(usage) = self.usage.get_mut(organization) {
            usage.add(amounts);
        }
    }
}

/// [`admit`] within a transaction that may admit several requests (a group of creates): an
/// organization's row is locked and its settings read once, and its usage summed once (the
/// caller [`Admissions::count`]s what it then writes).
pub(crate) async fn admit_under(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    admission: &Admission<'_>,
    known: &mut Admissions,
    request: &quota::Amounts,
) -> DbResult<()> {
    let organization = admission.organization;
    let overrides = match known.settings.get(organization) {
        Some(settings) => settings.clone(),
        None => {
            if engine.locks_rows() {
                let lock = format!(
                    "SELECT id FROM organizations WHERE id = ?{}",
                    engine.for_update()
                );
                tx.query(&lock, args![organization]).await?;
            }
            let read: Option<QuotaRecord> = records(
                &tx.query(
                    "SELECT * FROM quotas WHERE organization_id = ?",
                    args![organization],
                )
                .await?,
            )?
            .pop();
            known.settings.insert(organization.to_owned(), read.clone());
            read
        }
    };
    let limits = quota::effective(
        admission.defaults,
        &overrides.map(|q| q.overrides).unwrap_or_default(),
    );
    if limits.is_empty() {
        return Ok(());
    }
    let usage = match known.usage.get(organization) {
        Some(usage) => usage,
        None => {
            let usage = usage_in(tx, organization).await?;
            known.usage.entry(organization.to_owned()).or_insert(usage)
        }
    };
    quota::admit(organization, &limits, usage, request)?;
    Ok(())
}

/// What the instances of `organization` hold, as its quotas count it (see [`quota`]).
async fn usage_in(tx: &mut Box<dyn Tx>, organization: &str) -> DbResult<quota::Amounts> {
    let sums = tx.query(USAGE_OF_ORGANIZATION, args![organization]).await?;
    let mut usage = quota::Amounts::default();
    if let Some(row) = sums.first() {
        usage.instances = row.int("instances")? as u64;
        usage.vcpus = row.int("vcpus")? as u64;
        usage.memory_mb = row.int("memory_mb")? as u64;
        usage.gpus = row.int("gpus")? as u64;
        usage.disk_gb = row.int("disk_gb")? as u64;
    }
    for row in tx
        .query(GPU_USAGE_OF_ORGANIZATION, args![organization])
        .await?
    {
        usage
            .gpus_by_type
            .insert(row.text("gpu_type")?, row.int("n")? as u64);
    }
    Ok(usage)
}

/// Inserts `record` inside a transaction.
pub(crate) async fn insert_in<T: Table>(tx: &mut Box<dyn Tx>, record: &T) -> DbResult<()> {
    let (sql, args) = insert(record);
    tx.execute(&sql, args).await.map(drop)
}

pub(crate) fn instance_exists(instance: &InstanceRecord) -> Error {
    Error::AlreadyExists(format!(
        "instance {} already exists in project {}",
        instance.id, instance.project
    ))
}

/// The error for a service account that has as many active credentials as allowed.
fn too_many_credentials(max_active: usize) -> Error {
    Error::FailedPrecondition(format!(
        "a service account has at most {max_active} active credentials; delete one first"
    ))
}

/// `text` as a `LIKE` pattern matching it literally anywhere.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// How a page reads its rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Whole rows in id order, filtered as they come.
    Rows,
    /// The ids the filter keeps first (on SQLite the index of pages holds the labels and
    /// answers that alone), then those rows.
    KeysFirst,
}

/// Uids one statement looks up at most (each a bound value).
const UIDS_PER_STATEMENT: usize = 500;

/// An instance's columns but its metadata (read as none).
const LIGHT_INSTANCE: &str = "uid, project, id, zone, host_id, spec, vcpus, memory_mb, gpu_type, \
     gpu_count, desired, status, status_message, status_changed_at, generation, created_at, \
     updated_at, traceparent, request_id, metadata_digest, NULL AS metadata";

/// What the instances of an organization hold: every one not being deleted its place and
/// disks, those meant to run their cores, memory and GPUs.
const USAGE_OF_ORGANIZATION: &str = "SELECT COUNT(*) AS instances, \
     CAST(COALESCE(SUM(CASE WHEN i.desired IN ('RUNNING', 'SUSPENDED') THEN i.vcpus ELSE 0 END), 0) AS BIGINT) AS vcpus, \
     CAST(COALESCE(SUM(CASE WHEN i.desired IN ('RUNNING', 'SUSPENDED') THEN i.memory_mb ELSE 0 END), 0) AS BIGINT) AS memory_mb, \
     CAST(COALESCE(SUM(CASE WHEN i.desired IN ('RUNNING', 'SUSPENDED') THEN i.gpu_count ELSE 0 END), 0) AS BIGINT) AS gpus, \
     CAST(COALESCE(SUM(i.disk_gb), 0) AS BIGINT) AS disk_gb \
     FROM instances i JOIN projects p ON p.id = i.project \
     WHERE p.organization_id = ? AND i.desired <> 'DELETED'";

/// GPUs of each type the running instances of an organization hold.
const GPU_USAGE_OF_ORGANIZATION: &str = "SELECT i.gpu_type, CAST(SUM(i.gpu_count) AS BIGINT) AS n \
     FROM instances i JOIN projects p ON p.id = i.project \
     WHERE p.organization_id = ? AND i.desired IN ('RUNNING', 'SUSPENDED') \
     AND i.gpu_type IS NOT NULL AND i.gpu_count > 0 GROUP BY i.gpu_type";

/// What is placed on the hosts of zone `?`, per GPU type.
pub(crate) const GPU_USAGE_IN_ZONE: &str = "SELECT g.host_id, g.gpu_type, g.n \
     FROM host_gpu_usage g JOIN hosts h ON h.id = g.host_id WHERE h.zone = ? AND g.n > 0";

/// The columns of `hosts` placement reads ([`host_usage`]): capacity and usage counters.
pub(crate) const HOST_CAPACITY: &str =
    "id, driver, vcpus, memory_mb, gpus, used_vcpus, used_memory_mb, placed_instances";

/// GPUs of each type placed on each host, as counted when instances are placed and removed.
pub(crate) const GPU_USAGE_BY_HOST: &str =
    "SELECT host_id, gpu_type, n FROM host_gpu_usage WHERE n > 0";

/// Adds what `instance` holds on its host to (`sign` 1) or takes it from (`sign` -1) the host's
/// usage counters, inside the transaction that places or removes it.
pub(crate) async fn count_on_host(
    tx: &mut Box<dyn Tx>,
    instance: &InstanceRecord,
    sign: i64,
) -> DbResult<()> {
    let Some(host) = instance.host_id else {
        return Ok(());
    };
    tx.execute(
        "UPDATE hosts SET used_vcpus = used_vcpus + ?, used_memory_mb = used_memory_mb + ?, \
         placed_instances = placed_instances + ? WHERE id = ?",
        args![
            sign * i64::from(instance.vcpus),
            sign * instance.memory_mb as i64,
            sign,
            host
        ],
    )
    .await?;
    if let Some(gpu_type) = &instance.gpu_type
        && instance.gpu_count > 0
    {
        tx.execute(
            "INSERT INTO host_gpu_usage (host_id, gpu_type, n) VALUES (?, ?, ?) \
             ON CONFLICT (host_id, gpu_type) DO UPDATE SET n = host_gpu_usage.n + excluded.n",
            args![host, gpu_type, sign * i64::from(instance.gpu_count)],
        )
        .await?;
    }
    Ok(())
}

/// Sets every host's usage counters from the instances placed on it, and makes the rows of
/// the zones hosts are in (after an import).
async fn recount_host_usage(tx: &mut Box<dyn Tx>) -> DbResult<()> {
    for statement in [
        "UPDATE hosts SET \
         used_vcpus = COALESCE((SELECT CAST(SUM(vcpus) AS BIGINT) FROM instances WHERE host_id = hosts.id), 0), \
         used_memory_mb = COALESCE((SELECT CAST(SUM(memory_mb) AS BIGINT) FROM instances WHERE host_id = hosts.id), 0), \
         placed_instances = (SELECT COUNT(*) FROM instances WHERE host_id = hosts.id)",
        "DELETE FROM host_gpu_usage",
        "INSERT INTO host_gpu_usage (host_id, gpu_type, n) \
         SELECT host_id, gpu_type, CAST(SUM(gpu_count) AS BIGINT) FROM instances \
         WHERE host_id IS NOT NULL AND gpu_type IS NOT NULL GROUP BY host_id, gpu_type",
        "INSERT INTO placement_zones (zone) SELECT DISTINCT zone FROM hosts WHERE 1 = 1 \
         ON CONFLICT (zone) DO NOTHING",
        "UPDATE placement_zones SET version = version + 1",
    ] {
        tx.execute(statement, vec![]).await?;
    }
    Ok(())
}

/// The NICs on other hosts, with an underlay address, of the networks with a NIC on host `?`
/// (given twice).
const OVERLAY_PEERS: &str = "SELECT n.vni, a.instance_uid, a.nic, h.underlay \
     FROM addresses a \
     JOIN networks n ON n.project = a.project AND n.id = a.network \
     JOIN instances i ON i.uid = a.instance_uid \
     JOIN hosts h ON h.id = i.host_id \
     WHERE a.network IS NOT NULL AND h.id <> ? AND h.underlay IS NOT NULL \
     AND n.vni IN (SELECT n2.vni FROM addresses a2 \
         JOIN networks n2 ON n2.project = a2.project AND n2.id = a2.network \
         JOIN instances i2 ON i2.uid = a2.instance_uid WHERE i2.host_id = ?) \
     ORDER BY n.vni, h.underlay, a.instance_uid, a.nic";

#[async_trait]
impl Store for SqlStore {
    async fn setting_or_init(&self, key: &str, value: &str) -> Result<String> {
        let rows = self
            .db()
            .query(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                args![key, value],
            )
            .await;
        rows?;
        self.get_setting(key)
            .await?
            .ok_or_else(|| Error::internal(format!("setting {key} vanished")))
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let found: Option<Setting> = self
            .select_one("SELECT * FROM settings WHERE key = ?", args![key])
            .await?;
        Ok(found.map(|s| s.value))
    }

    async fn create_organization(&self, org: &OrganizationRecord) -> Result<()> {
        self.insert(org, || {
            Error::AlreadyExists(format!("organization {} already exists", org.id))
        })
        .await
    }

    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>> {
        self.by("id", id).await
    }

    async fn list_organizations(&self, page: &PageRequest) -> Result<Page<OrganizationRecord>> {
        self.page("1 = 1", vec![], page, &|_| true).await
    }

    async fn update_organization(
        &self,
        org: &OrganizationRecord,
    ) -> Result<Option<OrganizationRecord>> {
        self.guarded_update(
            vec![
                ("display_name", (&org.display_name).into()),
                ("description", (&org.description).into()),
                ("updated_at", ms(org.updated_at).into()),
            ],
            ("id", (&org.id).into()),
            org.generation,
        )
        .await
    }

    async fn delete_organization(&self, id: &str) -> Result<bool> {
        self.delete_unused::<OrganizationRecord>(
            id,
            "SELECT COUNT(*) AS n FROM projects WHERE organization_id = ?",
            id,
            |n| {
                Error::FailedPrecondition(format!(
                    "organization {id} still has {n} projects; delete them first"
                ))
            },
        )
        .await
    }

    async fn get_quota(&self, organization: &str) -> Result<Option<QuotaRecord>> {
        self.by("organization_id", organization).await
    }

    async fn save_quota(&self, quota: &QuotaRecord) -> Result<Option<QuotaRecord>> {
        if quota.generation == 0 {
            let stored = QuotaRecord {
                generation: 1,
                ..quota.clone()
            };
            let (sql, args) = insert(&stored);
            return match self.db().execute(&sql, args).await {
                Ok(_) => Ok(Some(stored)),
                Err(DbError::Unique) => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        self.guarded_update(
            vec![
                ("overrides", to_json(&quota.overrides).into()),
                ("updated_at", ms(quota.updated_at).into()),
            ],
            ("organization_id", (&quota.organization_id).into()),
            quota.generation,
        )
        .await
    }

    async fn quota_usage(&self, organization: &str) -> Result<quota::Amounts> {
        Ok(transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            usage_in(&mut tx, organization).await?
        })?)
    }

    async fn create_project(&self, project: &ProjectRecord) -> Result<()> {
        transaction!(self.db(), Isolation::Serializable, |tx| {
            let organizations = count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM organizations WHERE id = ?",
                args![&project.organization_id],
            )
            .await?;
            if organizations == 0 {
                return Err(Error::invalid(
                    "organizationId",
                    format!("organization {} does not exist", project.organization_id),
                )
                .into());
            }
            insert_in(&mut tx, project).await?;
        })
        .unique_or(|| Error::AlreadyExists(format!("project {} already exists", project.id)))?;
        self.cache.projects.invalidate(&project.id);
        Ok(())
    }

    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        let key = id.to_owned();
        match self.cache.projects.lookup(&key) {
            crate::cache::Lookup::Hit(found) => Ok(found),
            crate::cache::Lookup::Miss(ticket) => {
                let found: Option<ProjectRecord> = self.by("id", id).await?;
                self.cache.projects.fill(key, ticket, found.clone());
                Ok(found)
            }
        }
    }

    async fn list_projects(
        &self,
        organization_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProjectRecord>> {
        self.page_where("organization_id", organization_id, page)
            .await
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<Option<ProjectRecord>> {
        let stored = self
            .guarded_update(
                vec![
                    ("display_name", (&project.display_name).into()),
                    ("description", (&project.description).into()),
                    ("updated_at", ms(project.updated_at).into()),
                ],
                ("id", (&project.id).into()),
                project.generation,
            )
            .await;
        self.cache.projects.invalidate(&project.id);
        stored
    }

    async fn delete_project(&self, id: &str) -> Result<bool> {
        let deleted = transaction!(self.db(), Isolation::Serializable, |tx| {
            let n = count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM instances WHERE project = ?",
                args![id],
            )
            .await?;
            if n > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "project {id} still has {n} instances; delete them first"
                ))
                .into());
            }
            // Its networks, their subnets and its reserved addresses go with it.
            tx.execute("DELETE FROM addresses WHERE project = ?", args![id])
                .await?;
            tx.execute("DELETE FROM subnets WHERE project = ?", args![id])
                .await?;
            tx.execute("DELETE FROM networks WHERE project = ?", args![id])
                .await?;
            tx.execute("DELETE FROM projects WHERE id = ?", args![id])
                .await?
                > 0
        })?;
        self.cache.projects.invalidate(&id.to_owned());
        Ok(deleted)
    }

    async fn create_network(
        &self,
        network: &NetworkRecord,
        subnet: &SubnetRecord,
    ) -> Result<NetworkRecord> {
        Ok(transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            addressing::insert_network(&mut tx, network.clone(), subnet).await?
        })?)
    }

    async fn get_network(&self, project: &str, id: &str) -> Result<Option<NetworkRecord>> {
        self.select_one(
            "SELECT * FROM networks WHERE project = ? AND id = ?",
            args![project, id],
        )
        .await
    }

    async fn list_networks(
        &self,
        project: &str,
        page: &PageRequest,
    ) -> Result<Page<NetworkRecord>> {
        self.page_where("project", Some(project), page).await
    }

    async fn update_network(&self, network: &NetworkRecord) -> Result<Option<NetworkRecord>> {
        self.guarded_update(
            vec![
                ("display_name", (&network.display_name).into()),
                ("description", (&network.description).into()),
                ("updated_at", ms(network.updated_at).into()),
            ],
            ("uid", network.uid.into()),
            network.generation,
        )
        .await
    }

    async fn delete_network(&self, project: &str, id: &str) -> Result<bool> {
        Ok(transaction!(self.db(), Isolation::Serializable, |tx| {
            let Some(network): Option<NetworkRecord> = records(
                &tx.query(
                    "SELECT * FROM networks WHERE project = ? AND id = ?",
                    args![project, id],
                )
                .await?,
            )?
            .pop() else {
                return Ok(false);
            };
            let users = tx
                .query(
                    "SELECT DISTINCT i.id AS id FROM addresses a \
                     JOIN subnets s ON a.space = CAST(s.uid AS TEXT) \
                     JOIN instances i ON i.uid = a.instance_uid \
                     WHERE s.network_uid = ? ORDER BY i.id",
                    args![network.uid],
                )
                .await?;
            let reserved = tx
                .query(
                    "SELECT a.id AS id FROM addresses a \
                     JOIN subnets s ON a.space = CAST(s.uid AS TEXT) \
                     WHERE s.network_uid = ? AND a.id IS NOT NULL ORDER BY a.id",
                    args![network.uid],
                )
                .await?;
            let names = |rows: &[Row]| -> Result<Vec<String>> {
                rows.iter().map(|r| r.text("id")).collect()
            };
            let (users, reserved) = (names(&users)?, names(&reserved)?);
            if !users.is_empty() || !reserved.is_empty() {
                let mut holders = vec![];
                if !users.is_empty() {
                    holders.push(format!("instances [{}]", users.join(", ")));
                }
                if !reserved.is_empty() {
                    holders.push(format!("addresses [{}]", reserved.join(", ")));
                }
                return Err(Error::FailedPrecondition(format!(
                    "network {id} is still used by {}; delete or release them first",
                    holders.join(" and ")
                ))
                .into());
            }
            tx.execute(
                "DELETE FROM subnets WHERE network_uid = ?",
                args![network.uid],
            )
            .await?;
            tx.execute("DELETE FROM networks WHERE uid = ?", args![network.uid])
                .await?
                > 0
        })?)
    }

    async fn subnets_of_network(&self, network_uid: Uuid) -> Result<Vec<SubnetRecord>> {
        self.select(
            "SELECT * FROM subnets WHERE network_uid = ? ORDER BY id",
            args![network_uid],
        )
        .await
    }

    async fn get_subnet(&self, project: &str, id: &str) -> Result<Option<SubnetRecord>> {
        self.select_one(
            "SELECT * FROM subnets WHERE project = ? AND id = ?",
            args![project, id],
        )
        .await
    }

    async fn get_subnet_in_network(
        &self,
        project: &str,
        network: &str,
        subnet: &str,
    ) -> Result<Option<(SubnetRecord, i64)>> {
        let rows = self
            .db()
            .query(
                "SELECT s.*, n.vni AS network_vni FROM subnets s \
                 JOIN networks n ON n.uid = s.network_uid \
                 WHERE s.project = ? AND s.id = ? AND n.project = ? AND n.id = ?",
                args![project, subnet, project, network],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some((
            SubnetRecord::from_row(row.as_ref())?,
            row.int("network_vni")?,
        )))
    }

    async fn list_subnets(&self, project: &str, page: &PageRequest) -> Result<Page<SubnetRecord>> {
        self.page_where("project", Some(project), page).await
    }

    async fn allocate_address(
        &self,
        address: &AddressRecord,
        range: &ipnet::Ipv4Net,
    ) -> Result<AddressRecord> {
        Ok(transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            addressing::allocate(&mut tx, self.db(), address.clone(), range).await?
        })?)
    }

    async fn get_address(&self, project: &str, id: &str) -> Result<Option<AddressRecord>> {
        self.select_one(
            "SELECT * FROM addresses WHERE project = ? AND id = ?",
            args![project, id],
        )
        .await
    }

    async fn list_addresses(
        &self,
        project: &str,
        page: &PageRequest,
    ) -> Result<Page<AddressRecord>> {
        self.page(
            "project = ? AND id IS NOT NULL",
            args![project],
            page,
            &|_| true,
        )
        .await
    }

    async fn release_address(&self, project: &str, id: &str) -> Result<bool> {
        Ok(transaction!(self.db(), Isolation::Serializable, |tx| {
            let holder = tx
                .query(
                    "SELECT i.id AS id FROM addresses a JOIN instances i ON i.uid = a.instance_uid \
                     WHERE a.project = ? AND a.id = ?",
                    args![project, id],
                )
                .await?;
            if let Some(row) = holder.first() {
                return Err(Error::FailedPrecondition(format!(
                    "address {id} is held by instance {}; delete the instance first",
                    row.text("id")?
                ))
                .into());
            }
            tx.execute(
                "DELETE FROM addresses WHERE project = ? AND id = ?",
                args![project, id],
            )
            .await?
                > 0
        })?)
    }

    async fn addresses_of_instance(&self, instance: Uuid) -> Result<Vec<AddressRecord>> {
        self.select(
            "SELECT * FROM addresses WHERE instance_uid = ? ORDER BY nic",
            args![instance],
        )
        .await
    }

    async fn overlay_peers(&self, host_id: Uuid) -> Result<Vec<OverlayPeerRecord>> {
        let rows = self
            .db()
            .query(OVERLAY_PEERS, args![host_id, host_id])
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OverlayPeerRecord {
                    vni: row.int("vni")?,
                    instance_uid: row.uuid("instance_uid")?,
                    nic: row.int("nic")?,
                    underlay: row.text("underlay")?,
                })
            })
            .collect()
    }

    async fn register_host(&self, host: &HostRegistrationRecord) -> Result<HostRecord> {
        let record = HostRecord {
            id: Uuid::new_v4(),
            name: host.name.clone(),
            zone: host.zone.clone(),
            driver: host.driver.clone(),
            vcpus: host.vcpus,
            memory_mb: host.memory_mb,
            gpus: host.gpus.clone(),
            registered_at: host.now,
            last_seen_at: host.now,
            scheduling: "SCHEDULABLE".into(),
            accelerator: host.accelerator.clone(),
            agent_version: host.agent_version.clone(),
            underlay: host.underlay.clone(),
        };
        let (sql, args) = insert(&record);
        // A host that registers again keeps its id and whether operators cordoned it.
        let sql = format!(
            "{sql} ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, \
             driver = excluded.driver, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb, \
             gpus = excluded.gpus, last_seen_at = excluded.last_seen_at, \
             accelerator = excluded.accelerator, agent_version = excluded.agent_version, \
             underlay = excluded.underlay RETURNING *"
        );
        transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            // The zone it was in and the zone it is in, whose placements queue behind this.
            crate::zones::changed(
                &mut tx,
                "SELECT zone FROM hosts WHERE name = ?",
                args![&host.name],
            )
            .await?;
            tx.query(crate::zones::LOCK_ZONE, args![&host.zone]).await?;
            records(&tx.query(&sql, args.clone()).await?)?
                .pop()
                .ok_or_else(|| Error::internal("registering a host returned no row"))?
        })
        .map_err(Into::into)
    }

    async fn set_host_scheduling(
        &self,
        host_id: Uuid,
        scheduling: &str,
    ) -> Result<Option<HostRecord>> {
        // After the groups of creates placing in the host's zone now, before those after.
        Ok(transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            crate::zones::changed(
                &mut tx,
                "SELECT zone FROM hosts WHERE id = ?",
                args![host_id],
            )
            .await?;
            records(
                &tx.query(
                    "UPDATE hosts SET scheduling = ? WHERE id = ? RETURNING *",
                    args![scheduling, host_id],
                )
                .await?,
            )?
            .pop()
        })?)
    }

    async fn host_usage(&self) -> Result<Vec<HostUsage>> {
        let hosts = self
            .db()
            .query(
                &format!("SELECT {HOST_CAPACITY} FROM hosts ORDER BY id"),
                vec![],
            )
            .await?;
        let gpus = self.db().query(GPU_USAGE_BY_HOST, vec![]).await?;
        host_usage(&hosts, &gpus)
    }

    async fn create_server(&self, server: &ServerRecord) -> Result<()> {
        self.insert(server, || {
            Error::AlreadyExists(format!(
                "a server named {} already exists in project {}, or another server has BMC \
                 address {}",
                server.id, server.project, server.bmc_address
            ))
        })
        .await
    }

    async fn get_server(&self, project: &str, id: &str) -> Result<Option<ServerRecord>> {
        self.select_one(
            "SELECT * FROM servers WHERE project = ? AND id = ?",
            args![project, id],
        )
        .await
    }

    async fn get_server_by_uid(&self, uid: Uuid) -> Result<Option<ServerRecord>> {
        self.by("uid", uid).await
    }

    async fn list_servers(&self, project: &str, page: &PageRequest) -> Result<Page<ServerRecord>> {
        self.page_where("project", Some(project), page).await
    }

    async fn active_servers(&self) -> Result<Vec<ServerRecord>> {
        self.select(
            "SELECT * FROM servers WHERE provisioning_state <> 'decommissioned' ORDER BY uid",
            vec![],
        )
        .await
    }

    async fn update_server(&self, server: &ServerRecord) -> Result<Option<ServerRecord>> {
        let skip = ["uid", "project", "id", "created_at", "generation"];
        let set = server
            .values()
            .into_iter()
            .filter(|(column, _)| !skip.contains(column))
            .collect();
        self.guarded_update(set, ("uid", server.uid.into()), server.generation)
            .await
    }

    async fn append_server_log(&self, line: &ServerLogRecord) -> Result<()> {
        let mut line = line.clone();
        for _ in 0..16 {
            match self
                .insert(&line, || Error::AlreadyExists(String::new()))
                .await
            {
                Err(Error::AlreadyExists(_)) => line.seq += 1,
                other => return other,
            }
        }
        Err(Error::internal(
            "no free sequence number for a server log line",
        ))
    }

    async fn list_server_logs(
        &self,
        server_uid: Uuid,
        from: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<ServerLogRecord>> {
        self.select(
            "SELECT * FROM server_logs WHERE server_uid = ? AND seq >= ? AND seq < ? \
             ORDER BY seq LIMIT ?",
            args![server_uid, from, until, limit as i64],
        )
        .await
    }

    async fn remove_host(&self, host_id: Uuid) -> Result<bool> {
        Ok(transaction!(self.db(), Isolation::Serializable, |tx| {
            let on_it = count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM instances WHERE host_id = ?",
                args![host_id],
            )
            .await?;
            if on_it > 0 {
                return Ok(false);
            }
            crate::zones::changed(
                &mut tx,
                "SELECT zone FROM hosts WHERE id = ?",
                args![host_id],
            )
            .await?;
            tx.execute(
                "UPDATE servers SET host_id = NULL WHERE host_id = ?",
                args![host_id],
            )
            .await?;
            tx.execute(
                "DELETE FROM host_gpu_usage WHERE host_id = ?",
                args![host_id],
            )
            .await?;
            tx.execute("DELETE FROM hosts WHERE id = ?", args![host_id])
                .await?
                > 0
        })?)
    }

    async fn touch_host(&self, host_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let (reply, touched) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::Job::Touch {
            host: host_id,
            at: now,
            reply,
        };
        self.queued(job, touched).await
    }

    async fn list_hosts(&self) -> Result<Vec<HostRecord>> {
        self.select("SELECT * FROM hosts ORDER BY name", vec![])
            .await
    }

    async fn create_instance(
        &self,
        instance: &InstanceRecord,
        demand: &Demand,
        live_since: DateTime<Utc>,
        admission: &Admission<'_>,
    ) -> Result<InstanceRecord> {
        let (reply, created) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::CreateJob {
            instance: instance.clone(),
            demand: demand.clone(),
            live_since,
            organization: admission.organization.to_owned(),
            defaults: admission.defaults.clone(),
            reply,
            span: tracing::Span::current(),
        };
        self.queued(crate::group_commit::Job::Create(job), created)
            .await
    }

    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRecord>> {
        let key = (project.to_owned(), id.to_owned());
        match self.cache.instances.lookup(&key) {
            crate::cache::Lookup::Hit(found) => Ok(found),
            crate::cache::Lookup::Miss(ticket) => {
                let found: Option<InstanceRecord> = self
                    .select_one(
                        "SELECT * FROM instances WHERE project = ? AND id = ?",
                        args![project, id],
                    )
                    .await?;
                self.cache.instances.fill(key, ticket, found.clone());
                Ok(found)
            }
        }
    }

    async fn get_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>> {
        self.by("uid", uid).await
    }

    async fn get_cached_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>> {
        if let Some((project, id)) = self.cache.instance_name(uid)
            && let Some(found) = self.get_instance(&project, &id).await?
            && found.uid == uid
        {
            return Ok(Some(found));
        }
        let found = self.get_instance_by_uid(uid).await?;
        if let Some(record) = &found {
            self.cache.name_instance(record);
        }
        Ok(found)
    }

    async fn list_instances(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceRecord>> {
        let (filter, values, fetch) = self.instance_filter(project, selector);
        let keep = |i: &InstanceRecord| selector.matches(&i.spec.labels);
        self.page_by(&filter, values, page, &keep, fetch).await
    }

    async fn list_instance_versions(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceVersion>> {
        let (filter, values, fetch) = self.instance_filter(project, selector);
        let keep = |i: &InstanceVersion| selector.matches(&i.labels);
        self.page_by(&filter, values, page, &keep, fetch).await
    }

    async fn get_instances_by_uid(&self, uids: &[Uuid]) -> Result<Vec<InstanceRecord>> {
        let mut found = Vec::with_capacity(uids.len());
        for batch in uids.chunks(UIDS_PER_STATEMENT) {
            let marks = vec!["?"; batch.len()].join(", ");
            let args = batch.iter().map(|&uid| Arg::from(uid)).collect();
            found.extend(
                self.select::<InstanceRecord>(
                    &format!("SELECT * FROM instances WHERE uid IN ({marks})"),
                    args,
                )
                .await?,
            );
        }
        Ok(found)
    }
    async fn update_instance(&self, instance: &InstanceRecord) -> Result<Option<InstanceRecord>> {
        self.queued_update(instance, false).await
    }

    async fn update_instance_status(
        &self,
        instance: &InstanceRecord,
    ) -> Result<Option<InstanceRecord>> {
        self.queued_update(instance, true).await
    }

    async fn update_instance_to_run(
        &self,
        instance: &InstanceRecord,
        admission: &Admission<'_>,
    ) -> Result<Option<InstanceRecord>> {
        let (sql, args) = guarded_update_of(instance);
        let stored = transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            admit(
                &mut tx,
                self.db(),
                admission,
                &instance.amounts().running_part(),
            )
            .await?;
            written(instance, &tx.query(&sql, args.clone()).await?)
        });
        // A committed update's row takes the place of the one it updated, when published;
        // any other outcome forgets the row now.
        match &stored {
            Ok(Some(record)) => {
                let change = (crate::feed::ChangeKind::Updated, record.clone());
                self.log.committed(self.db(), vec![change]).await;
            }
            _ => self.log.forget(instance),
        }
        Ok(stored?)
    }

    async fn finalize_instance_deletion(&self, uid: Uuid) -> Result<bool> {
        let gone = transaction!(self.db(), Isolation::ReadCommitted, |tx| {
            // The zone's lock first, as a group of writes takes it before an instance's row or a
            // host's. Whether or not the row is deleted after all: a bump too many costs only a
            // read of the zone.
            crate::zones::changed(
                &mut tx,
                "SELECT h.zone FROM instances i JOIN hosts h ON h.id = i.host_id WHERE i.uid = ?",
                args![uid],
            )
            .await?;
            let gone = records::<InstanceRecord>(
                &tx.query(
                    "DELETE FROM instances WHERE uid = ? AND desired = 'DELETED' RETURNING *",
                    args![uid],
                )
                .await?,
            )?
            .pop();
            if let Some(gone) = &gone {
                addressing::release_instance_addresses(&mut tx, uid).await?;
                count_on_host(&mut tx, gone, -1).await?;
            }
            gone
        })?;
        let Some(gone) = gone else {
            return Ok(false);
        };
        self.log
            .committed(self.db(), vec![(crate::feed::ChangeKind::Deleted, gone)])
            .await;
        Ok(true)
    }

    async fn list_instances_on_host(&self, host_id: Uuid) -> Result<Vec<InstanceRecord>> {
        self.select(
            "SELECT * FROM instances WHERE host_id = ? ORDER BY uid",
            args![host_id],
        )
        .await
    }

    async fn list_assignments_on_host(
        &self,
        host_id: Uuid,
    ) -> Result<Vec<(InstanceRecord, String)>> {
        let rows = self
            .db()
            .query(
                &format!("SELECT {LIGHT_INSTANCE} FROM instances WHERE host_id = ? ORDER BY uid"),
                args![host_id],
            )
            .await?;
        assignments(&rows)
    }

    async fn list_assignments_among(
        &self,
        host_id: Uuid,
        uids: &[Uuid],
    ) -> Result<Vec<(InstanceRecord, String)>> {
        let mut found = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(UIDS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut args = args![host_id];
            args.extend(chunk.iter().map(|uid| Arg::from(*uid)));
            let sql = format!(
                "SELECT {LIGHT_INSTANCE} FROM instances WHERE host_id = ? AND uid IN ({marks}) \
                 ORDER BY uid"
            );
            found.extend(assignments(&self.db().query(&sql, args).await?)?);
        }
        Ok(found)
    }

    async fn list_instances_in_status_since(
        &self,
        statuses: &[InstanceStatus],
        before: DateTime<Utc>,
    ) -> Result<Vec<InstanceRecord>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; statuses.len()].join(", ");
        let sql =
            format!("SELECT * FROM instances WHERE status IN ({marks}) AND status_changed_at < ?");
        let mut args: Vec<Arg> = statuses.iter().map(|s| s.as_str().into()).collect();
        args.push(ms(before).into());
        self.select(&sql, args).await
    }

    async fn claim_instance_lease(
        &self,
        uid: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.claim_lease("instances", ("uid", uid.into()), owner, now, until)
            .await
    }

    async fn release_instance_lease(&self, uid: Uuid, owner: &str) -> Result<()> {
        self.release_lease("instances", ("uid", uid.into()), owner)
            .await
    }

    async fn count_instances_by_status_and_host(
        &self,
    ) -> Result<Vec<(InstanceStatus, Option<Uuid>, u64)>> {
        let rows = self
            .db()
            .query(
                "SELECT status, host_id, COUNT(*) AS n FROM instances GROUP BY status, host_id",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let status = row.text("status")?;
                let status = InstanceStatus::parse(&status)
                    .ok_or_else(|| Error::internal(format!("bad status {status}")))?;
                Ok((status, row.opt_uuid("host_id")?, row.int("n")? as u64))
            })
            .collect()
    }

    async fn count_instances(&self) -> Result<u64> {
        let rows = self
            .db()
            .query("SELECT COUNT(*) AS n FROM instances", vec![])
            .await?;
        Ok(rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0) as u64)
    }

    async fn upsert_image(&self, image: &ImageRecord) -> Result<ImageRecord> {
        let (sql, args) = insert(image);
        let sql = format!(
            "{sql} ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
             description = excluded.description, os = excluded.os, format = excluded.format, \
             size_bytes = excluded.size_bytes, min_disk_gb = excluded.min_disk_gb, \
             status = excluded.status, file = excluded.file, updated_at = excluded.updated_at, \
             generation = images.generation + 1 RETURNING *"
        );
        let stored = records(&self.db().query(&sql, args).await?)?
            .pop()
            .ok_or_else(|| Error::internal("an image upsert returned no row"))?;
        self.db().announce("").await;
        Ok(stored)
    }

    async fn create_image(&self, image: &ImageRecord) -> Result<()> {
        self.insert(image, || {
            Error::AlreadyExists(format!("image {} already exists", image.id))
        })
        .await?;
        self.db().announce("").await;
        Ok(())
    }

    async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>> {
        self.by("id", id).await
    }

    async fn list_images(&self, page: &PageRequest) -> Result<Page<ImageRecord>> {
        self.page("1 = 1", vec![], page, &|_| true).await
    }

    async fn update_image(&self, image: &ImageRecord) -> Result<Option<ImageRecord>> {
        let stored = self
            .guarded_update(
                vec![
                    ("display_name", (&image.display_name).into()),
                    ("description", (&image.description).into()),
                    ("os", (&image.os).into()),
                    ("size_bytes", (image.size_bytes as i64).into()),
                    ("min_disk_gb", i64::from(image.min_disk_gb).into()),
                    ("status", image.status.as_str().into()),
                    ("status_message", (&image.status_message).into()),
                    ("sha256", (&image.sha256).into()),
                    ("file", (&image.file).into()),
                    ("bytes_done", (image.bytes_done as i64).into()),
                    ("updated_at", ms(image.updated_at).into()),
                ],
                ("id", (&image.id).into()),
                image.generation,
            )
            .await?;
        if stored.is_some() {
            self.db().announce("").await;
        }
        Ok(stored)
    }

    async fn claim_image_lease(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.claim_lease("images", ("id", id.into()), owner, now, until)
            .await
    }

    async fn release_image_lease(&self, id: &str, owner: &str) -> Result<()> {
        self.release_lease("images", ("id", id.into()), owner).await
    }

    async fn delete_image(&self, id: &str, self_link: &str) -> Result<bool> {
        let users = contains_pattern(&format!("\"source\":\"{self_link}\""));
        let deleted = self
            .delete_unused::<ImageRecord>(
                id,
                "SELECT COUNT(*) AS n FROM instances WHERE spec LIKE ? ESCAPE '\\'",
                &users,
                |n| {
                    Error::FailedPrecondition(format!(
                        "image {id} is the source of {n} instances' disks; delete them first"
                    ))
                },
            )
            .await?;
        self.db().announce("").await;
        Ok(deleted)
    }

    async fn append_console(&self, uid: Uuid, at: u64, bytes: &[u8], keep: u64) -> Result<u64> {
        let (reply, end) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::ConsoleJob {
            uid,
            at,
            bytes: bytes.to_vec(),
            keep,
            reply,
        };
        self.queued(crate::group_commit::Job::Console(job), end)
            .await
    }

    async fn read_console(&self, uid: Uuid, start: u64, max: u64) -> Result<(u64, Vec<u8>, u64)> {
        let log: Option<ConsoleLogRecord> = self
            .select_one(
                "SELECT * FROM console_logs WHERE instance_uid = ?",
                args![uid],
            )
            .await?;
        let Some(log) = log else {
            return Ok((0, Vec::new(), 0));
        };
        let (base, content) = (log.base_offset, log.content);
        let end = base + content.len() as u64;
        let from = start.clamp(base, end);
        let to = (from + max).min(end);
        let slice = content[(from - base) as usize..(to - base) as usize].to_vec();
        Ok((from, slice, to))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.select("SELECT * FROM signing_keys ORDER BY created_at", vec![])
            .await
    }

    async fn init_signing_key(&self, key: &SigningKeyRecord) -> Result<Vec<SigningKeyRecord>> {
        transaction!(self.db(), Isolation::Serializable, |tx| {
            if count(&mut tx, "SELECT COUNT(*) AS n FROM signing_keys", vec![]).await? == 0 {
                insert_in(&mut tx, key).await?;
            }
        })?;
        self.list_signing_keys().await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.insert(key, || {
            Error::AlreadyExists(format!("API key {} already exists", key.id))
        })
        .await
    }

    async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.select_one(
            "SELECT * FROM api_keys WHERE secret_hash = ? OR previous_secret_hash = ?",
            args![secret_hash, secret_hash],
        )
        .await
    }

    async fn touch_api_key(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.db()
            .execute(
                "UPDATE api_keys SET last_used_at = ? WHERE uid = ?",
                args![ms(now), uid],
            )
            .await?;
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        self.by("id", id).await
    }

    async fn list_api_keys(
        &self,
        organization: Option<&str>,
        created_by: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>> {
        let mut filter = vec!["1 = 1"];
        let mut args = Vec::new();
        if let Some(org) = organization {
            filter.push("organization_id = ?");
            args.push(org.into());
        }
        if let Some(by) = created_by {
            filter.push("created_by = ?");
            args.push(by.into());
        }
        self.page(&filter.join(" AND "), args, page, &|_| true)
            .await
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<Option<ApiKeyRecord>> {
        self.update(
            vec![
                ("display_name", (&key.display_name).into()),
                ("roles", to_json(&key.roles).into()),
                ("status", (&key.status).into()),
                ("secret_hash", (&key.secret_hash).into()),
                ("previous_secret_hash", (&key.previous_secret_hash).into()),
                (
                    "previous_secret_expires_at",
                    key.previous_secret_expires_at.map(ms).into(),
                ),
                ("last_rotated_at", key.last_rotated_at.map(ms).into()),
            ],
            ("uid", key.uid.into()),
        )
        .await
    }

    async fn delete_api_key(&self, id: &str) -> Result<bool> {
        self.delete("DELETE FROM api_keys WHERE id = ?", args![id])
            .await
    }

    async fn revoke_token(&self, token: &RevokedTokenRecord) -> Result<()> {
        let (sql, args) = insert(token);
        self.db()
            .execute(&format!("{sql} ON CONFLICT (jti) DO NOTHING"), args)
            .await?;
        Ok(())
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let found: Option<RevokedTokenRecord> = self
            .select_one("SELECT * FROM revoked_tokens WHERE jti = ?", args![jti])
            .await?;
        Ok(found.is_some())
    }

    async fn create_service_account(&self, account: &ServiceAccountRecord) -> Result<()> {
        self.insert(account, || {
            Error::AlreadyExists(format!("service account {} already exists", account.id))
        })
        .await
    }

    async fn get_service_account(&self, id: &str) -> Result<Option<ServiceAccountRecord>> {
        self.by("id", id).await
    }

    async fn get_service_account_by_client_id(
        &self,
        client_id: &str,
    ) -> Result<Option<ServiceAccountRecord>> {
        self.by("client_id", client_id).await
    }

    async fn list_service_accounts(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ServiceAccountRecord>> {
        self.page_where("organization_id", organization, page).await
    }

    async fn update_service_account(
        &self,
        account: &ServiceAccountRecord,
    ) -> Result<Option<ServiceAccountRecord>> {
        self.update(
            vec![
                ("display_name", (&account.display_name).into()),
                ("description", (&account.description).into()),
                ("roles", to_json(&account.roles).into()),
                ("status", (&account.status).into()),
                ("updated_at", ms(account.updated_at).into()),
            ],
            ("id", (&account.id).into()),
        )
        .await
    }

    async fn delete_service_account(&self, id: &str) -> Result<bool> {
        self.delete("DELETE FROM service_accounts WHERE id = ?", args![id])
            .await
    }

    async fn create_credential(
        &self,
        credential: &CredentialRecord,
        max_active: usize,
        now: DateTime<Utc>,
    ) -> Result<()> {
        transaction!(self.db(), Isolation::Serializable, |tx| {
            let active = count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM service_account_credentials \
                 WHERE service_account_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                args![&credential.service_account_id, ms(now)],
            )
            .await?;
            if active as usize >= max_active {
                return Err(too_many_credentials(max_active).into());
            }
            insert_in(&mut tx, credential).await?;
        })?;
        Ok(())
    }

    async fn list_credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRecord>> {
        self.select(
            "SELECT * FROM service_account_credentials WHERE service_account_id = ? ORDER BY id",
            args![service_account_id],
        )
        .await
    }

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        self.by("id", id).await
    }

    async fn find_credential_by_hash(&self, secret_hash: &str) -> Result<Option<CredentialRecord>> {
        self.by("secret_hash", secret_hash).await
    }

    async fn touch_credential(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()> {
        self.db()
            .execute(
                "UPDATE service_account_credentials SET last_used_at = ? WHERE uid = ?",
                args![ms(now), uid],
            )
            .await?;
        Ok(())
    }

    async fn delete_credential(&self, id: &str) -> Result<bool> {
        self.delete(
            "DELETE FROM service_account_credentials WHERE id = ?",
            args![id],
        )
        .await
    }

    async fn record_audit_event(&self, event: &AuditEventRecord) -> Result<()> {
        let (reply, stored) = tokio::sync::oneshot::channel();
        let job = crate::group_commit::AuditJob {
            event: event.clone(),
            reply,
        };
        self.queued(crate::group_commit::Job::Audit(job), stored)
            .await
    }

    async fn prune_audit_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Event ids start with their time in zero-padded milliseconds: the key orders by time.
        let bound = format!("{:013}", before.timestamp_millis());
        Ok(self
            .db()
            .execute("DELETE FROM audit_events WHERE id < ?", args![bound])
            .await?)
    }

    async fn prune_revoked_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(self
            .db()
            .execute(
                "DELETE FROM revoked_tokens WHERE expires_at < ?",
                args![ms(now)],
            )
            .await?)
    }

    async fn list_audit_events(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEventRecord>> {
        self.page_where("organization_id", organization, page).await
    }

    async fn export(&self) -> Result<Snapshot> {
        let settings: Vec<Setting> = self.all().await?;
        Ok(Snapshot {
            settings: settings.into_iter().map(|s| (s.key, s.value)).collect(),
            organizations: self.all().await?,
            projects: self.all().await?,
            hosts: self.all().await?,
            instances: self.all().await?,
            console_logs: self.all().await?,
            signing_keys: self.all().await?,
            api_keys: self.all().await?,
            images: self.all().await?,
            revoked_tokens: self.all().await?,
            service_accounts: self.all().await?,
            credentials: self.all().await?,
            audit_events: self.all().await?,
            quotas: self.all().await?,
            networks: self.all().await?,
            subnets: self.all().await?,
            addresses: self.all().await?,
            servers: self.all().await?,
            server_logs: self.all().await?,
        })
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<()> {
        let held: Vec<String> = self
            .row_counts()
            .await?
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        if !held.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "the target database already holds a region ({}); copy into an empty database",
                held.join(", ")
            )));
        }
        let settings: Vec<Setting> = snapshot
            .settings
            .iter()
            .map(|(key, value)| Setting {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        transaction!(self.db(), Isolation::Serializable, |tx| {
            // Parents before children, as the foreign keys want them.
            insert_all(&mut tx, &settings).await?;
            insert_all(&mut tx, &snapshot.organizations).await?;
            insert_all(&mut tx, &snapshot.projects).await?;
            insert_all(&mut tx, &snapshot.hosts).await?;
            insert_all(&mut tx, &snapshot.instances).await?;
            recount_host_usage(&mut tx).await?;
            insert_all(&mut tx, &snapshot.console_logs).await?;
            insert_all(&mut tx, &snapshot.signing_keys).await?;
            insert_all(&mut tx, &snapshot.api_keys).await?;
            insert_all(&mut tx, &snapshot.images).await?;
            insert_all(&mut tx, &snapshot.revoked_tokens).await?;
            insert_all(&mut tx, &snapshot.service_accounts).await?;
            insert_all(&mut tx, &snapshot.credentials).await?;
            insert_all(&mut tx, &snapshot.audit_events).await?;
            insert_all(&mut tx, &snapshot.quotas).await?;
            insert_all(&mut tx, &snapshot.networks).await?;
            insert_all(&mut tx, &snapshot.subnets).await?;
            insert_all(&mut tx, &snapshot.addresses).await?;
            insert_all(&mut tx, &snapshot.servers).await?;
            insert_all(&mut tx, &snapshot.server_logs).await?;
        })?;
        self.cache.clear();
        Ok(())
    }

    async fn row_counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for table in self.db().tables().await? {
            // `table` comes from the schema itself.
            let rows = self
                .db()
                .query(&format!("SELECT COUNT(*) AS n FROM \"{table}\""), vec![])
                .await?;
            let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
            counts.insert(table, n as u64);
        }
        Ok(counts)
    }

    fn follow_changes(&self, changes: Changes) {
        self.engine.follow_changes(changes, self.log.clone());
    }

    fn instance_changes(&self) -> tokio::sync::broadcast::Receiver<crate::InstanceChange> {
        self.log.subscribe()
    }

    fn record_pool_metrics(&self) {
        self.engine.record_pool_metrics();
    }
}

/// Rows of [`LIGHT_INSTANCE`] as a host polls them: each instance with its metadata's digest.
fn assignments(rows: &[Row]) -> Result<Vec<(InstanceRecord, String)>> {
    rows.iter()
        .map(|row| {
            let digest = row.opt_text("metadata_digest")?.unwrap_or_default();
            Ok((InstanceRecord::from_row(row.as_ref())?, digest))
        })
        .collect()
}

async fn insert_all<T: Table>(tx: &mut Box<dyn Tx>, rows: &[T]) -> DbResult<()> {
    for row in rows {
        insert_in(tx, row).await?;
    }
    Ok(())
}
