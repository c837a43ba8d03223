-- Images: those of the configured catalog and those registered through the API.
CREATE TABLE images (
    uid UUID PRIMARY KEY,
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
    updated_at BIGINT NOT NULL
);
