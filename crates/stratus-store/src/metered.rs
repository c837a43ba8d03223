//! Every statement and transaction the store runs, timed: an [`Engine`] wrapped so that the
//! SQL of [`crate::sql`] stays free of measurement.
//!
//! Statements are timed by kind (`read` for a `SELECT`, `write` otherwise), transactions from
//! `BEGIN` to their end (committed, or rolled back by an error or a lost race), and errors are
//! counted by what the store makes of them. The pools' use is read when metrics are scraped.

use crate::engine::{Arg, DbError, DbResult, Engine, Isolation, Row, Tx};
use async_trait::async_trait;
use std::time::Instant;
use stratus_core::Result;
use tracing::Instrument;

/// `engine`, measured under the label `database`.
pub(crate) struct Metered {
    pub engine: Box<dyn Engine>,
    pub database: &'static str,
}

fn kind(sql: &str) -> &'static str {
    let head = sql.trim_start().get(..6).unwrap_or("");
    if head.eq_ignore_ascii_case("SELECT") {
        "read"
    } else {
        "write"
    }
}

/// The span of one statement (at debug level: exported with traces, free when nobody listens).
fn statement_span(database: &'static str, sql: &str) -> tracing::Span {
    tracing::debug_span!(
        "db statement",
        otel.name = %format!("db.{}", kind(sql)),
        db.system = database,
        db.statement = sql,
    )
}

/// Runs `statement` (the work of `sql`) inside its span, and records how long it took and how
/// it failed.
async fn timed<T>(
    database: &'static str,
    sql: &str,
    statement: impl std::future::Future<Output = DbResult<T>>,
) -> DbResult<T> {
    let started = Instant::now();
    let result = statement.instrument(statement_span(database, sql)).await;
    observe(database, sql, started, &result);
    result
}

fn observe<T>(database: &'static str, sql: &str, started: Instant, result: &DbResult<T>) {
    metrics::histogram!(
        "stratus_db_statement_duration_seconds",
        "database" => database,
        "kind" => kind(sql)
    )
    .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        let error = match e {
            DbError::Unique => "unique",
            DbError::Retry => "retry",
            DbError::Other(_) => "other",
            DbError::Undo => "undo",
        };
        metrics::counter!("stratus_db_errors_total", "database" => database, "error" => error)
            .increment(1);
    }
}

#[async_trait]
impl Engine for Metered {
    async fn query(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        timed(self.database, sql, self.engine.query(sql, args)).await
    }

    async fn execute(&self, sql: &str, args: Vec<Arg>) -> DbResult<u64> {
        timed(self.database, sql, self.engine.execute(sql, args)).await
    }

    async fn write_alone(&self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        timed(self.database, sql, self.engine.write_alone(sql, args)).await
    }

    async fn begin(&self, isolation: Isolation) -> DbResult<Box<dyn Tx>> {
        let started = Instant::now();
        let tx = self.engine.begin(isolation).await?;
        Ok(Box::new(MeteredTx {
            tx: Some(tx),
            database: self.database,
            started,
        }))
    }

    async fn migration_session(&self) -> DbResult<Box<dyn Tx>> {
        self.engine.migration_session().await
    }

    fn for_update(&self) -> &'static str {
        self.engine.for_update()
    }

    fn failed_statement_keeps_transaction(&self) -> bool {
        self.engine.failed_statement_keeps_transaction()
    }

    fn in_process(&self) -> bool {
        self.engine.in_process()
    }

    fn labels_by_containment(&self) -> bool {
        self.engine.labels_by_containment()
    }

    fn plans_from_gathered_statistics(&self) -> bool {
        self.engine.plans_from_gathered_statistics()
    }

    fn id_in_byte_order(&self) -> &'static str {
        self.engine.id_in_byte_order()
    }

    async fn tables(&self) -> Result<Vec<String>> {
        self.engine.tables().await
    }

    async fn announce(&self, payload: &str) {
        self.engine.announce(payload).await
    }

    fn announces(&self) -> bool {
        self.engine.announces()
    }

    fn follow_changes(&self, changes: crate::Changes, log: std::sync::Arc<crate::feed::ChangeLog>) {
        self.engine.follow_changes(changes, log)
    }

    fn name(&self) -> &'static str {
        self.database
    }

    fn record_pool_metrics(&self) {
        self.engine.record_pool_metrics()
    }
}

/// A transaction, timed from `BEGIN` to its end.
struct MeteredTx {
    tx: Option<Box<dyn Tx>>,
    database: &'static str,
    started: Instant,
}

impl MeteredTx {
    fn tx(&mut self) -> &mut Box<dyn Tx> {
        self.tx
            .as_mut()
            .expect("a transaction is used until it ends")
    }
}

#[async_trait]
impl Tx for MeteredTx {
    async fn query(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<Vec<Row>> {
        let database = self.database;
        timed(database, sql, self.tx().query(sql, args)).await
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> DbResult<u64> {
        let database = self.database;
        timed(database, sql, self.tx().execute(sql, args)).await
    }

    async fn commit(mut self: Box<Self>) -> DbResult<()> {
        let tx = self.tx.take().expect("a transaction commits once");
        let result = tx.commit().await;
        let outcome = if result.is_ok() {
            "committed"
        } else {
            "failed"
        };
        metrics::histogram!(
            "stratus_db_transaction_duration_seconds",
            "database" => self.database,
            "outcome" => outcome
        )
        .record(self.started.elapsed().as_secs_f64());
        result
    }
}

impl Drop for MeteredTx {
    fn drop(&mut self) {
        if self.tx.is_some() {
            metrics::histogram!(
                "stratus_db_transaction_duration_seconds",
                "database" => self.database,
                "outcome" => "rolled_back"
            )
            .record(self.started.elapsed().as_secs_f64());
        }
    }
}
