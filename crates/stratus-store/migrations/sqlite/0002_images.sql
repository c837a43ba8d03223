-- Images: those of the configured catalog and those registered through the API and imported
-- into the region's image store.
CREATE TABLE images (
    uid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    os TEXT NOT NULL,
    format TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    min_disk_gb INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    source TEXT,
    sha256 TEXT,
    file TEXT,
    bytes_done INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
