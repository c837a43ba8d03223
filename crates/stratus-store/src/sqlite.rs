//! The embedded SQLite engine: one file in the data directory, WAL, one writer connection (and
//! one that copies the write-ahead log back beside it).

use crate::engine::impl_columns;
use crate::engine::{Arg, DbError, DbResult, Engine, Isolation, Row, Tx, pool_gauges};
use crate::migrate::{ColumnTypes, is_bookkeeping, migrate};
use crate::rows::parse_uuid;
use crate::sql::SqlStore;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use stratus_core::{Error, Result};

/// Opens the SQLite store of a data directory.
pub struct SqliteStore;

impl SqliteStore {
    /// Opens (creating if missing) `stratus.db` in `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<SqlStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| Error::internal(format!("database: {e}")))?
            .filename(data_dir.join("stratus.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer checkpoints only as a backstop (see [`checkpoint_in_the_background`]).
        let options = options.pragma("journal_size_limit", JOURNAL_SIZE_LIMIT);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINTS_PAST),
            )
            .await
            .map_err(db_error)?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        let engine = SqliteEngine {
            read,
            write,
            _checkpointer: checkpoint_in_the_background(checkpoints),
        };
        let types = ColumnTypes {
            uid: "TEXT",
            bytes: "BLOB",
            add_column: "ADD COLUMN",
            byte_order: "",
            labels_in_index: ", labels",
            former_migrations: 5,
            postgres: false,
        };
        migrate(&engine, &types).await?;
        SqlStore::open(Box::new(engine)).await
    }
}

/// Reads go to a small pool; writes go through a single connection, so that write
/// transactions queue instead of failing on locks.
struct SqliteEngine {
    read: SqlitePool,
    write: SqlitePool,
    /// Ends the background checkpoints when the engine is dropped.
    _checkpointer: tokio::sync::oneshot::Sender<()>,
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The writer checkpoints in the commit that takes the log past this many pages (16 MiB).
const WRITER_CHECKPOINTS_PAST: &str = "4000";

/// The log is cut back to this many bytes when it starts over (64 MiB).
const JOURNAL_SIZE_LIMIT: &str = "67108864";

/// Copies the write-ahead log back into the database file every [`CHECKPOINT_EVERY`], on a
/// connection of its own, until the returned sender is dropped.
///
/// SQLite checkpoints by default in the commit that takes the log past 1,000 pages, and that
/// commit then waits for every page to be copied and the database file flushed: with a region
/// committing a group of creates every few milliseconds, those were among the slowest
/// creates. A passive checkpoint beside the writer takes no lock the writer needs, so the
/// pages are mostly copied by the time the writer checkpoints itself; but only a writer starts
/// the log over, and only when a checkpoint has caught up with it, which a busy writer never
/// lets this one do. So the writer still checkpoints, past [`WRITER_CHECKPOINTS_PAST`] pages,
/// copying what is left, and the log starts over in its next transaction: it stays bounded.
fn checkpoint_in_the_background(pool: SqlitePool) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "checkpointing the database's write-ahead log failed");
            }
        }
        pool.close().await;
    });
    stop
}

impl_columns!(
    SqliteRow,
    db_error,
    |row: &SqliteRow, col: &str| parse_uuid(col, &crate::engine::Columns::text(row, col)?),
    |row: &SqliteRow, col: &str| crate::engine::Columns::opt_text(row, col)?
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

fn classify(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Unique,
        _ => DbError::Other(db_error(e)),
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// `sql` with `args` bound: uids as text.
fn statement(sql: &str, args: Vec<Arg>) -> Query<'static> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Uid(v) => query.bind(v.map(|u| u.to_string())),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

fn boxed(rows: Vec<SqliteRow>) -> Vec<Row> {
    rows.into_iter().map(|r| Box::new(r) as Row).collect()
}

fn is_read(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
}

#[async_trait]
impl Engine for SqliteEngine {
    async fn query(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        let pool = if is_read(sql) {
            &self.read
        } else {
            &self.write
        };
        statement(sql, args)
            .fetch_all(pool)
            .await
            .map(boxed)
            .map_err(classify)
    }

    async fn execute(&self, sql: &str, args: Vec<Arg>) -> DbResult<u64> {
        statement(sql, args)
            .execute(&self.write)
            .await
            .map(|done| done.rows_affected())
            .map_err(classify)
    }

    async fn begin(&self, _: Isolation) -> DbResult<Box<dyn Tx>> {
        // The single writer makes every transaction serial; IMMEDIATE takes the write lock
        // at the start, so a transaction never fails half-way on a lock upgrade.
        let tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        Ok(Box::new(SqliteTx(tx)))
    }

    async fn migration_session(&self) -> DbResult<Box<dyn Tx>> {
        self.begin(Isolation::Serializable).await
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn record_pool_metrics(&self) {
        pool_gauges("sqlite", "read", self.read.size(), self.read.num_idle());
        pool_gauges("sqlite", "write", self.write.size(), self.write.num_idle());
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn failed_statement_keeps_transaction(&self) -> bool {
        true
    }

    fn in_process(&self) -> bool {
        true
    }

    fn id_in_byte_order(&self) -> &'static str {
        "id"
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
                vec![],
            )
            .await?;
        let names = rows
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<Vec<String>>>()?;
        Ok(names.into_iter().filter(|t| !is_bookkeeping(t)).collect())
    }
}

struct SqliteTx(Transaction<'static, Sqlite>);

crate::engine::sqlx_tx!(SqliteTx);
