-- The audit trail: one row per mutating API request.
CREATE TABLE audit_events (
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
