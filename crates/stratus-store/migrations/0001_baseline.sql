-- The schema of a Stratus region, for SQLite and PostgreSQL alike. Times are milliseconds since
-- the Unix epoch (UTC); JSON columns hold values the store never queries inside. `{uid}` is the
-- database's uid type (TEXT in SQLite, UUID in PostgreSQL) and `{bytes}` its byte string (BLOB,
-- BYTEA). Each statement runs on its own and may run twice.

CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS organizations (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS projects (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS projects_by_organization ON projects (organization_id, id);

CREATE TABLE IF NOT EXISTS hosts (
    id {uid} PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    zone TEXT NOT NULL,
    driver TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    gpus TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS instances (
    uid {uid} PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    zone TEXT NOT NULL,
    host_id {uid} REFERENCES hosts (id),
    spec TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    gpu_type TEXT,
    gpu_count BIGINT NOT NULL,
    desired TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    status_changed_at BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, id)
);

CREATE INDEX IF NOT EXISTS instances_by_host ON instances (host_id);

CREATE INDEX IF NOT EXISTS instances_by_status ON instances (status, status_changed_at);

CREATE TABLE IF NOT EXISTS console_logs (
    instance_uid {uid} PRIMARY KEY REFERENCES instances (uid) ON DELETE CASCADE,
    base_offset BIGINT NOT NULL,
    content {bytes} NOT NULL
);

CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key {bytes} NOT NULL,
    public_key {bytes} NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_by TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    status TEXT NOT NULL DEFAULT 'active',
    previous_secret_hash TEXT,
    previous_secret_expires_at BIGINT,
    last_rotated_at BIGINT
);

CREATE INDEX IF NOT EXISTS api_keys_by_previous_secret ON api_keys (previous_secret_hash);

CREATE TABLE IF NOT EXISTS images (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    os TEXT NOT NULL,
    format TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    min_disk_gb BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    source TEXT,
    sha256 TEXT,
    file TEXT,
    bytes_done BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT
);

CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS service_accounts (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS service_account_credentials (
    uid {uid} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE INDEX IF NOT EXISTS credentials_by_service_account ON service_account_credentials (service_account_id);

CREATE TABLE IF NOT EXISTS audit_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    principal TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL,
    request_id TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_events_by_organization ON audit_events (organization_id, id);
