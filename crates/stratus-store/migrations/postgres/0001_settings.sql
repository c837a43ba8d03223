-- The state of a Stratus region on PostgreSQL (or a database speaking its protocol, such as
-- CockroachDB): one DDL statement per migration, UUID v4 keys made by Stratus, no sequences.
-- Times are milliseconds since the Unix epoch (UTC); JSON columns hold values never queried inside.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
