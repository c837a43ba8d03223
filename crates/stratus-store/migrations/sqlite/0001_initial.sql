-- The state of a Stratus region. Times are milliseconds since the Unix epoch (UTC); uids are
-- UUID v4 text; JSON columns hold values the store never queries inside.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    uid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE projects (
    uid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX projects_by_organization ON projects (organization_id, id);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    zone TEXT NOT NULL,
    driver TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    gpus TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE TABLE instances (
    uid TEXT PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    zone TEXT NOT NULL,
    host_id TEXT REFERENCES hosts (id),
    spec TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    gpu_type TEXT,
    gpu_count INTEGER NOT NULL,
    desired TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    status_changed_at INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project, id)
);

CREATE INDEX instances_by_host ON instances (host_id);
CREATE INDEX instances_by_status ON instances (status, status_changed_at);

CREATE TABLE console_logs (
    instance_uid TEXT PRIMARY KEY REFERENCES instances (uid) ON DELETE CASCADE,
    base_offset INTEGER NOT NULL,
    content BLOB NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    uid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_by TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
