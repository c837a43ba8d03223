//! The schema, one source for both databases, applied in numbered steps.
//!
//! Each migration is a file in `migrations/` whose statements both databases run, with the two
//! column types they name differently written as `{uid}` and `{bytes}`, and `{add_column}` for
//! adding a column. Statements run one at a
//! time outside transactions (CockroachDB runs schema changes that way) and are written to be
//! run again (`IF NOT EXISTS`), so a start cut short half-way simply finishes at the next one.
//! Which migrations a database has is kept in `schema_migrations`; on PostgreSQL the steps run
//! under an advisory lock, so replicas starting together apply them once.
//!
//! Databases made before the schema had one source carry sqlx's `_sqlx_migrations` instead; when
//! that shows the whole former schema, the baseline (migration 1) is recorded as applied.

use crate::engine::{Arg, Engine, args};
use chrono::Utc;
use stratus_core::{Error, Result};

/// One step of the schema.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "baseline",
        sql: include_str!("../migrations/0001_baseline.sql"),
    },
    Migration {
        version: 2,
        name: "instance metadata",
        sql: include_str!("../migrations/0002_instance_metadata.sql"),
    },
    Migration {
        version: 3,
        name: "quotas",
        sql: include_str!("../migrations/0003_quotas.sql"),
    },
    Migration {
        version: 4,
        name: "host operations",
        sql: include_str!("../migrations/0004_host_operations.sql"),
    },
    Migration {
        version: 5,
        name: "instance trace",
        sql: include_str!("../migrations/0005_instance_trace.sql"),
    },
    Migration {
        version: 6,
        name: "networks",
        sql: include_str!("../migrations/0006_networks.sql"),
    },
    Migration {
        version: 7,
        name: "host underlay",
        sql: include_str!("../migrations/0007_host_underlay.sql"),
    },
    Migration {
        version: 8,
        name: "servers",
        sql: include_str!("../migrations/0008_servers.sql"),
    },
    Migration {
        version: 9,
        name: "host_usage",
        sql: include_str!("../migrations/0009_host_usage.sql"),
    },
    Migration {
        version: 10,
        name: "instance_labels",
        sql: include_str!("../migrations/0010_instance_labels.sql"),
    },
    Migration {
        version: 11,
        name: "instances_in_byte_order",
        sql: include_str!("../migrations/0011_instances_in_byte_order.sql"),
    },
    Migration {
        version: 12,
        name: "instance_label_pairs",
        sql: include_str!("../migrations/0012_instance_label_pairs.sql"),
    },
    Migration {
        version: 13,
        name: "placement_zones",
        sql: include_str!("../migrations/0013_placement_zones.sql"),
    },
    Migration {
        version: 14,
        name: "placement_zone_versions",
        sql: include_str!("../migrations/0014_placement_zone_versions.sql"),
    },
];

/// How a database spells what the schema leaves open: two column types, and adding a column
/// (which PostgreSQL can make repeatable; SQLite runs a migration in one transaction).
pub(crate) struct ColumnTypes {
    pub uid: &'static str,
    pub bytes: &'static str,
    pub add_column: &'static str,
    /// The collation of ids in byte order, as pages order them (`{byte_order}`): nothing where
    /// that is the default (SQLite), ` COLLATE "C"` on PostgreSQL.
    pub byte_order: &'static str,
    /// `, labels` where an index entry may be of any size (SQLite), so that the index of pages
    /// carries instances' labels; nothing on PostgreSQL, whose entries are bounded.
    pub labels_in_index: &'static str,
    /// How many migrations a database made by the former, per-database schema had when it
    /// matched the baseline.
    pub former_migrations: i64,
    /// Whether this is PostgreSQL: a statement marked `{postgres}` runs there alone.
    pub postgres: bool,
}

/// The statements of `sql`, with the column types filled in.
fn statements<'a>(sql: &'a str, types: &'a ColumnTypes) -> impl Iterator<Item = String> + 'a {
    sql.split(";\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| match s.strip_prefix("{postgres}") {
            Some(only_there) => types.postgres.then(|| only_there.trim().to_owned()),
            None => Some(s),
        })
        .map(|s| {
            s.replace("{uid}", types.uid)
                .replace("{bytes}", types.bytes)
                .replace("{add_column}", types.add_column)
                .replace("{byte_order}", types.byte_order)
                .replace("{labels_in_index}", types.labels_in_index)
        })
}

/// Brings the database's schema up to date.
pub(crate) async fn migrate(engine: &dyn Engine, types: &ColumnTypes) -> Result<()> {
    let mut session = engine.migration_session().await?;
    session
        .execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            vec![],
        )
        .await?;
    let applied = applied_versions(session.as_mut()).await?;
    let record = |m: &Migration| -> (&'static str, Vec<Arg>) {
        (
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?) \
             ON CONFLICT (version) DO NOTHING",
            args![m.version, m.name, Utc::now().timestamp_millis()],
        )
    };
    if applied.is_empty() {
        // A database of the former schema: its tables are the baseline's.
        let former = session
            .query(
                "SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success",
                vec![],
            )
            .await;
        if let Ok(rows) = former {
            let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
            if n != types.former_migrations {
                return Err(Error::internal(format!(
                    "this database has {n} of the {} migrations of the former schema; start it \
                     once with the Stratus that made it so it is complete, then with this one",
                    types.former_migrations
                )));
            }
            let (sql, args) = record(&MIGRATIONS[0]);
            session.execute(sql, args).await?;
            tracing::info!("the database's former schema is recorded as the baseline");
        }
    }
    let applied = applied_versions(session.as_mut()).await?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in statements(migration.sql, types) {
            session.execute(&statement, vec![]).await.map_err(|e| {
                Error::internal(format!(
                    "migration {} ({}): {}",
                    migration.version,
                    migration.name,
                    Error::from(e)
                ))
            })?;
        }
        let (sql, args) = record(migration);
        session.execute(sql, args).await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migrated the database"
        );
    }
    session.commit().await?;
    Ok(())
}

async fn applied_versions(session: &mut dyn crate::engine::Tx) -> Result<Vec<i64>> {
    session
        .query("SELECT version AS n FROM schema_migrations", vec![])
        .await?
        .iter()
        .map(|row| row.int("n"))
        .collect()
}

/// Bookkeeping tables of migrations, and tables derived from the region's own that an import
/// rebuilds (what is placed on each host, the zones hosts are in), not the region's own.
pub(crate) fn is_bookkeeping(table: &str) -> bool {
    table == "schema_migrations"
        || table.starts_with("_sqlx_")
        || table == "host_gpu_usage"
        || table == "placement_zones"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_with_types_filled_in() {
        let types = ColumnTypes {
            uid: "UUID",
            bytes: "BYTEA",
            add_column: "ADD COLUMN IF NOT EXISTS",
            byte_order: " COLLATE \"C\"",
            labels_in_index: "",
            former_migrations: 0,
            postgres: true,
        };
        let all: Vec<String> = statements(MIGRATIONS[0].sql, &types).collect();
        assert!(all.len() > 10);
        assert!(all.iter().all(|s| !s.contains('{') && !s.contains("--")));
        assert!(all[1].starts_with("CREATE TABLE IF NOT EXISTS organizations"));
        assert!(all[1].contains("uid UUID PRIMARY KEY"));
    }

    #[test]
    fn statements_marked_postgres_run_there_alone() {
        let mut types = ColumnTypes {
            uid: "TEXT",
            bytes: "BLOB",
            add_column: "ADD COLUMN",
            byte_order: "",
            labels_in_index: ", labels",
            former_migrations: 0,
            postgres: false,
        };
        let sql = MIGRATIONS[11].sql;
        assert_eq!(statements(sql, &types).count(), 0);
        types.postgres = true;
        let there: Vec<String> = statements(sql, &types).collect();
        assert_eq!(there.len(), 2);
        assert!(there[1].starts_with("CREATE INDEX IF NOT EXISTS instances_by_label_pairs"));
    }
}
