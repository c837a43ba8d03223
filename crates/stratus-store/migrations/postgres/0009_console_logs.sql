CREATE TABLE console_logs (
    instance_uid UUID PRIMARY KEY REFERENCES instances (uid) ON DELETE CASCADE,
    base_offset BIGINT NOT NULL,
    content BYTEA NOT NULL
);
