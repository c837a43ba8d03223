//! The PostgreSQL engine: the store of a region whose control plane runs as several replicas.
//!
//! The SQL stays within what CockroachDB accepts too, so a region can run on a distributed
//! database that speaks the PostgreSQL protocol: keys are UUID v4 values made by Stratus (no
//! sequences), schema changes run one statement at a time, and every transaction runs in a loop
//! that repeats it on a serialization failure (SQLSTATE 40001) or a deadlock (40P01), a bounded
//! number of times with jittered backoff.
//!
//! Decisions that read before they write run `SERIALIZABLE`, so the database, not Stratus,
//! catches two replicas deciding on the same stale read. Placement is the hot one: it locks
//! its zone's row of `placement_zones` (bumping its version) under `READ COMMITTED`, so concurrent
//! creates in a zone queue behind each other and each sees the capacity the previous one took,
//! instead of aborting and retrying under load. One row per zone, not each host's: locking a
//! thousand host rows wrote a lock into each of them per group.
//!
//! Replicas hear of each other's writes to instances and images through `NOTIFY` on channel
//! `stratus_changes` (see [`crate::Store::follow_changes`]), so an agent long-polling one
//! replica learns of a create made through another at once. A database without `pg_notify`
//! (such as CockroachDB) is noticed at the first attempt; replicas then rely on bounded waits.
//!
//! When the database cannot be reached, operations fail with `Unavailable` within the pool's
//! acquire timeout (the API answers 503 with `Retry-After`); the pool reconnects by itself, so
//! a region resumes without a restart when the database is back.

use crate::engine::impl_columns;
use crate::engine::{
    Arg, DbError, DbResult, Engine, Isolation, Row, Tx, numbered_placeholders, pool_gauges,
};
use crate::migrate::{ColumnTypes, is_bookkeeping, migrate};
use crate::sql::SqlStore;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row as _, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stratus_core::{Error, Result};
use uuid::Uuid;

/// The channel replicas announce their writes on.
const CHANGES_CHANNEL: &str = "stratus_changes";

/// The advisory lock replicas take while they change the schema.
const MIGRATION_LOCK: i64 = 0x5354_5241_5455_5300;

/// Opens the store of a region kept in PostgreSQL.
pub struct PostgresStore;

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the schema
    /// up to date.
    pub async fn open(url: &str) -> Result<SqlStore> {
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
        let engine = PgEngine {
            pool,
            notifies: Arc::new(AtomicBool::new(true)),
        };
        let types = ColumnTypes {
            uid: "UUID",
            bytes: "BYTEA",
            add_column: "ADD COLUMN IF NOT EXISTS",
            byte_order: " COLLATE \"C\"",
            labels_in_index: "",
            former_migrations: 25,
            postgres: true,
        };
        migrate(&engine, &types).await?;
        SqlStore::open(Box::new(engine)).await
    }
}

/// One connection pool shared by reads and writes.
struct PgEngine {
    pool: PgPool,
    /// Whether the database takes `pg_notify` (cleared at the first refusal).
    notifies: Arc<AtomicBool>,
}

impl_columns!(
    PgRow,
    db_error,
    |row: &PgRow, col: &str| row.try_get::<Uuid, _>(col).map_err(db_error),
    |row: &PgRow, col: &str| row.try_get::<Option<Uuid>, _>(col).map_err(db_error)
);

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
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

fn classify(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Unique,
        _ if matches!(sqlstate(&e).as_deref(), Some("40001" | "40P01")) => DbError::Retry,
        _ => DbError::Other(db_error(e)),
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// `sql` with its placeholders numbered and `args` bound: uids as `UUID`.
fn statement(sql: &str, args: Vec<Arg>) -> Query<'static> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(numbered_placeholders(sql)));
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Uid(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

fn boxed(rows: Vec<PgRow>) -> Vec<Row> {
    rows.into_iter().map(|r| Box::new(r) as Row).collect()
}

#[async_trait]
impl Engine for PgEngine {
    async fn query(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        statement(sql, args)
            .fetch_all(&self.pool)
            .await
            .map(boxed)
            .map_err(classify)
    }

    async fn execute(&self, sql: &str, args: Vec<Arg>) -> DbResult<u64> {
        statement(sql, args)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(classify)
    }

    /// Outside `BEGIN` and `COMMIT`: a statement sent alone commits as it ends, a trip to the
    /// database instead of three.
    async fn write_alone(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        self.query(sql, args).await
    }

    async fn begin(&self, isolation: Isolation) -> DbResult<Box<dyn Tx>> {
        let begin = match isolation {
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        let tx = self.pool.begin_with(begin).await.map_err(classify)?;
        Ok(Box::new(PgTx(tx)))
    }

    async fn migration_session(&self) -> DbResult<Box<dyn Tx>> {
        let mut connection = self.pool.acquire().await.map_err(classify)?;
        // Where advisory locks exist, replicas starting together take turns; elsewhere the
        // statements' IF NOT EXISTS keeps a second run harmless.
        let locked = sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *connection)
            .await
            .is_ok();
        Ok(Box::new(PgSession {
            connection: Some(connection),
            locked,
        }))
    }

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn record_pool_metrics(&self) {
        pool_gauges("postgres", "main", self.pool.size(), self.pool.num_idle());
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn failed_statement_keeps_transaction(&self) -> bool {
        false
    }

    fn in_process(&self) -> bool {
        false
    }

    fn labels_by_containment(&self) -> bool {
        true
    }

    fn plans_from_gathered_statistics(&self) -> bool {
        true
    }

    fn id_in_byte_order(&self) -> &'static str {
        "id COLLATE \"C\""
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT table_name::TEXT AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
                vec![],
            )
            .await?;
        let names = rows
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<Vec<String>>>()?;
        Ok(names.into_iter().filter(|t| !is_bookkeeping(t)).collect())
    }

    /// Tells the other replicas that instances or images changed. Best effort: a lost
    /// announcement only delays them until their bounded wait ends.
    async fn announce(&self, payload: &str) {
        if !self.notifies.load(Ordering::Relaxed) {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await;
        if let Err(e) = sent
            && sqlstate(&e).as_deref() == Some("42883")
        {
            tracing::warn!("the database has no pg_notify; replicas fall back to bounded waits");
            self.notifies.store(false, Ordering::Relaxed);
        }
    }

    fn announces(&self) -> bool {
        self.notifies.load(Ordering::Relaxed)
    }

    fn follow_changes(&self, changes: crate::Changes, log: Arc<crate::feed::ChangeLog>) {
        tokio::spawn(follow(self.pool.clone(), changes, log));
    }
}

/// Listens on [`CHANGES_CHANNEL`]: hands `log` each announcement's payload, and bumps `changes`
/// for those that name no instance. After an outage it reconnects, then bumps and tells `log`
/// to resync, since announcements may have been missed meanwhile.
async fn follow(pool: PgPool, changes: crate::Changes, log: Arc<crate::feed::ChangeLog>) {
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            log.heard(None);
            changes.bump();
            loop {
                let notification = listener.recv().await?;
                // Instance changes wake their subscribers, which wake whom they concern.
                if !log.heard(Some(notification.payload())) {
                    changes.bump();
                }
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

struct PgTx(Transaction<'static, Postgres>);

crate::engine::sqlx_tx!(PgTx);

/// A connection that changes the schema, statement by statement, under the migration lock.
/// Dropped before [`Tx::commit`] (a migration failed), the connection is closed rather than
/// returned to the pool, which releases the lock.
struct PgSession {
    connection: Option<PoolConnection<Postgres>>,
    locked: bool,
}

impl PgSession {
    fn connection(&mut self) -> &mut sqlx::PgConnection {
        self.connection
            .as_deref_mut()
            .expect("the session's connection is there until commit")
    }
}

#[async_trait]
impl Tx for PgSession {
    async fn query(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        statement(sql, args)
            .fetch_all(self.connection())
            .await
            .map(boxed)
            .map_err(classify)
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<u64> {
        statement(sql, args)
            .execute(self.connection())
            .await
            .map(|done| done.rows_affected())
            .map_err(classify)
    }

    async fn commit(mut self: Box<Self>) -> DbResult<()> {
        if self.locked {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(self.connection())
                .await
                .map_err(classify)?;
            self.locked = false;
        }
        Ok(())
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        if self.locked
            && let Some(connection) = self.connection.take()
        {
            drop(connection.detach());
        }
    }
}
