-- Quotas: an organization's own limits over the region's defaults (a JSON object of quota
-- name to limit, or null for unlimited), and the disk an instance holds, summed for them.
-- Rows of earlier schemas get their disk size from their spec when the store starts.

CREATE TABLE IF NOT EXISTS quotas (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    overrides TEXT NOT NULL,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE instances {add_column} disk_gb BIGINT;
