-- One row per zone that hosts registered in, with a version that everything changing what
-- placement reads of the zone's hosts bumps (crate::zones). Creates placed in a zone queue on
-- its row here (the bump locks it on PostgreSQL), instead of each group of creates locking
-- every host row of the zone: that wrote a lock into each of a zone's rows (a thousand at
-- region scale) per group. A zone's row is made with its first host's, and an import makes
-- them again from the hosts.

CREATE TABLE IF NOT EXISTS placement_zones (
    zone TEXT PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 0
);

INSERT INTO placement_zones (zone) SELECT DISTINCT zone FROM hosts WHERE 1 = 1 ON CONFLICT (zone) DO NOTHING;
