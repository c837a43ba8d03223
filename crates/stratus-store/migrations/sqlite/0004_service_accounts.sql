-- Service accounts: non-human principals an organization's administrators make, with roles,
-- that authenticate with client credentials (the `client_credentials` grant).
CREATE TABLE service_accounts (
    uid TEXT PRIMARY KEY,
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
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE service_account_credentials (
    uid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX credentials_by_service_account ON service_account_credentials (service_account_id);
-- The audit trail: one row per mutating API request.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    principal TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
