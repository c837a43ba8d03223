CREATE TABLE api_keys (
    uid UUID PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_by TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
