//! The seam between the store and a database: everything the SQL of [`crate::sql`] needs from
//! SQLite or PostgreSQL, and nothing more.
//!
//! The store is written once. Its statements use `?` placeholders, standard SQL and the few
//! things both databases agree on (`RETURNING`, `ON CONFLICT`, `LIKE … ESCAPE`); what they do not
//! agree on is asked of the engine here:
//!
//! - **values**: an [`Arg`] binds as the database's own type (a uid is text in SQLite and a
//!   native `UUID` in PostgreSQL), and rows come back as [`Columns`], which decode alike;
//! - **placeholders**: PostgreSQL numbers them (`$1`), so its engine renumbers the `?`s;
//! - **transactions**: SQLite runs every write transaction on its single writer connection
//!   with `BEGIN IMMEDIATE`, so one never fails half-way; PostgreSQL runs them at the isolation
//!   the caller asks for, and [`transaction!`] repeats a body that lost a serialization race;
//! - **small dialect words**: `FOR UPDATE` (PostgreSQL locks rows; SQLite's writer is already
//!   alone) and byte order for ids (`COLLATE "C"` in PostgreSQL; SQLite compares bytes anyway);
//! - **the schema's tables**, for counting rows, and **change notifications** between replicas.
//!
//! Errors come back as [`DbError`], which keeps apart what the store must tell: a unique key
//! that was taken, a transaction to run again, and everything else as a domain [`Error`].

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use stratus_core::{Error, Result};
use uuid::Uuid;

/// Typed access to the columns of a row.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;

    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        Ok(time(self.int(col)?))
    }

    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.opt_int(col)?.map(time))
    }
}

/// Implements [`Columns`] for a database's row type; `$uuid` and `$opt_uuid` decode uids.
macro_rules! impl_columns {
    ($row:ty, $error:path, $uuid:expr, $opt_uuid:expr) => {
        impl $crate::engine::Columns for $row {
            fn text(&self, col: &str) -> stratus_core::Result<String> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn opt_text(&self, col: &str) -> stratus_core::Result<Option<String>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn int(&self, col: &str) -> stratus_core::Result<i64> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn opt_int(&self, col: &str) -> stratus_core::Result<Option<i64>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn bytes(&self, col: &str) -> stratus_core::Result<Vec<u8>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn uuid(&self, col: &str) -> stratus_core::Result<uuid::Uuid> {
                $uuid(self, col)
            }
            fn opt_uuid(&self, col: &str) -> stratus_core::Result<Option<uuid::Uuid>> {
                $opt_uuid(self, col)
            }
        }
    };
}
pub(crate) use impl_columns;

/// Milliseconds since the epoch, as times are kept.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A time kept as milliseconds since the epoch.
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A value bound to a `?` of a statement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Uid(Option<Uuid>),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<Uuid> for Arg {
    fn from(v: Uuid) -> Self {
        Arg::Uid(Some(v))
    }
}

impl From<Option<Uuid>> for Arg {
    fn from(v: Option<Uuid>) -> Self {
        Arg::Uid(v)
    }
}

impl From<&Vec<u8>> for Arg {
    fn from(v: &Vec<u8>) -> Self {
        Arg::Bytes(v.clone())
    }
}

/// Builds a `Vec<Arg>` from values of any type [`Arg`] converts from.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::engine::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// A row of a result, read through [`Columns`].
pub(crate) type Row = Box<dyn Columns + Send + Sync>;

/// Why a statement failed, as far as the store's decisions go.
#[derive(Debug)]
pub(crate) enum DbError {
    /// A unique key is taken.
    Unique,
    /// The transaction lost a serialization race (or a deadlock) and may be run again.
    Retry,
    /// Anything else, already mapped (`Unavailable` for a database out of reach).
    Other(Error),
    /// A job of a group run together was refused after it wrote: the group's transaction is
    /// undone and the group runs again job by job ([`crate::group_commit`]).
    Undo,
}

impl From<Error> for DbError {
    fn from(e: Error) -> Self {
        DbError::Other(e)
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unique => Error::internal("a unique key of the database is taken"),
            DbError::Retry => Error::Unavailable(
                "the region's database is busy with conflicting writes; retry shortly".into(),
            ),
            DbError::Other(e) => e,
            DbError::Undo => Error::internal("a group of writes was undone"),
        }
    }
}

pub(crate) type DbResult<T> = std::result::Result<T, DbError>;

/// Turns a taken unique key into the caller's "already exists".
pub(crate) trait UniqueOr<T> {
    fn unique_or(self, already_exists: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> UniqueOr<T> for DbResult<T> {
    fn unique_or(self, already_exists: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e {
            DbError::Unique => already_exists(),
            other => other.into(),
        })
    }
}

/// How a transaction isolates itself from concurrent ones (PostgreSQL; SQLite's writer is
/// serial anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Reads that decide a write: the database catches two deciders on a stale read.
    Serializable,
    /// Rows locked with `FOR UPDATE`: competitors queue instead of aborting.
    ReadCommitted,
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
#[async_trait]
pub(crate) trait Tx: Send {
    async fn query(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>>;
    /// Runs a statement; returns the rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<u64>;
    async fn commit(self: Box<Self>) -> DbResult<()>;
}

/// A database the store runs on.
#[async_trait]
pub(crate) trait Engine: Send + Sync + 'static {
    /// Runs one statement outside a transaction; `SELECT`s may go to a reader.
    async fn query(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>>;
    /// Runs one statement outside a transaction; returns the rows it changed.
    async fn execute(&self, sql: &str, args: Vec<Arg>) -> DbResult<u64>;
    async fn begin(&self, isolation: Isolation) -> DbResult<Box<dyn Tx>>;
    /// Runs one writing statement as a transaction of its own, committed when it answers; the
    /// rows it returns.
    async fn write_alone(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        let mut tx = self.begin(Isolation::ReadCommitted).await?;
        let rows = tx.query(sql, args).await?;
        tx.commit().await?;
        Ok(rows)
    }
    /// A connection for changing the schema, outside any transaction, held by this process
    /// alone until committed.
    async fn migration_session(&self) -> DbResult<Box<dyn Tx>>;
    /// ` FOR UPDATE` where the database locks selected rows, else nothing.
    fn for_update(&self) -> &'static str;
    /// Whether selecting a row `FOR UPDATE` locks it; where not (SQLite, whose one writer runs
    /// transactions one after the other), a select made only to lock is left out.
    fn locks_rows(&self) -> bool {
        !self.for_update().is_empty()
    }
    /// Whether a statement that fails inside a transaction leaves the transaction as it was
    /// before the statement (SQLite, for a refused constraint), so that a single statement
    /// needs no savepoint around it; PostgreSQL aborts the whole transaction.
    fn failed_statement_keeps_transaction(&self) -> bool;
    /// Whether the database runs in this process on threads of its own (SQLite), so the
    /// writer of [`crate::group_commit`] may wait for it on a thread of its own too, never
    /// queued behind request handlers; a database reached over sockets (PostgreSQL) is driven
    /// by the runtime its connections were opened on.
    fn in_process(&self) -> bool;
    /// Whether the database chooses its plans from statistics gathered apart from the writes
    /// (PostgreSQL: `ANALYZE`, which autovacuum runs at most once a minute per database), so
    /// that a table which grows fast is planned as the small table it was: see
    /// [`crate::group_commit::Statistics`].
    fn plans_from_gathered_statistics(&self) -> bool {
        false
    }
    /// The id column as compared and ordered by bytes.
    fn id_in_byte_order(&self) -> &'static str;
    /// Whether a page's prefilter asks for an instance's `key=value` labels as JSON
    /// containment (PostgreSQL, whose GIN index over the labels answers it, migration 0012)
    /// rather than as the pair's text in the labels (SQLite, whose index of pages carries them).
    fn labels_by_containment(&self) -> bool {
        false
    }
    /// The schema's own tables (no bookkeeping of migrations or of the database itself).
    async fn tables(&self) -> Result<Vec<String>>;
    /// Tells other replicas that instances or images changed (best effort); `payload` names
    /// the instances ([`crate::feed`]), empty for images.
    async fn announce(&self, payload: &str) {
        let _ = payload;
    }
    /// Whether [`Engine::announce`] reaches other replicas (else payloads need not be made).
    fn announces(&self) -> bool {
        false
    }
    /// Bumps `changes` whenever another replica announces a change, and hands `log` what it
    /// announced.
    fn follow_changes(&self, changes: crate::Changes, log: Arc<crate::feed::ChangeLog>) {
        let _ = (changes, log);
    }
    /// `sqlite` or `postgres`, for metrics.
    fn name(&self) -> &'static str;
    /// Sets the gauges of its connection pools' use.
    fn record_pool_metrics(&self) {}
}

/// Sets the gauges of one connection pool: connections open, and of those how many are idle.
pub(crate) fn pool_gauges(database: &'static str, pool: &'static str, size: u32, idle: usize) {
    let busy = f64::from(size) - idle as f64;
    metrics::gauge!("stratus_db_pool_connections", "database" => database, "pool" => pool, "state" => "idle")
        .set(idle as f64);
    metrics::gauge!("stratus_db_pool_connections", "database" => database, "pool" => pool, "state" => "busy")
        .set(busy.max(0.0));
}

/// Implements [`Tx`] for `$tx`, a newtype over a sqlx transaction, with the engine module's own
/// `statement` (binding [`Arg`]s), `boxed` (rows as [`Row`]s) and `classify` (errors).
macro_rules! sqlx_tx {
    ($tx:ident) => {
        #[async_trait::async_trait]
        impl $crate::engine::Tx for $tx {
            async fn query(
                &mut self,
                sql: &str,
                args: Vec<$crate::engine::Arg>,
            ) -> $crate::engine::DbResult<Vec<$crate::engine::Row>> {
                statement(sql, args)
                    .fetch_all(&mut *self.0)
                    .await
                    .map(boxed)
                    .map_err(classify)
            }

            async fn execute(
                &mut self,
                sql: &str,
                args: Vec<$crate::engine::Arg>,
            ) -> $crate::engine::DbResult<u64> {
                statement(sql, args)
                    .execute(&mut *self.0)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(classify)
            }

            async fn commit(self: Box<Self>) -> $crate::engine::DbResult<()> {
                self.0.commit().await.map_err(classify)
            }
        }
    };
}
pub(crate) use sqlx_tx;

/// Renumbers the `?` placeholders of `sql` as `$1, $2, …` (statements here hold no `?` in
/// literals).
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// How many times a transaction that lost a serialization race is tried.
pub(crate) const MAX_ATTEMPTS: u32 = 12;

/// Waits a little longer after each lost race, with jitter, so competitors spread out.
pub(crate) async fn backoff(attempt: u32) {
    let base = 5u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(base + nanos % base)).await;
}

/// Runs `$body` in a transaction `$tx` of `$engine` at `$isolation`, committing at its end and
/// running it again when it lost a serialization race. The body's `?` takes database and domain
/// errors alike; an early `return Err(…)` rolls back.
macro_rules! transaction {
    ($engine:expr, $isolation:expr, |$tx:ident| $body:block) => {{
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome: $crate::engine::DbResult<_> = async {
                let mut $tx = $engine.begin($isolation).await?;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err($crate::engine::DbError::Retry) if attempt < $crate::engine::MAX_ATTEMPTS => {
                    metrics::counter!(
                        "stratus_db_transaction_retries_total",
                        "database" => $engine.name()
                    )
                    .increment(1);
                    $crate::engine::backoff(attempt).await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use transaction;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("UPDATE t SET a = ?, b = ? WHERE id = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
    }
}
