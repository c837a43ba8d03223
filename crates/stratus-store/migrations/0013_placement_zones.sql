-- One row per zone that hosts registered in. Creates placed in a zone queue on its row here
-- (PostgreSQL locks it `FOR UPDATE`), and so does a change of whether a host of the zone takes
-- new instances, instead of each group of creates locking every host row of the zone: that
-- wrote a lock into each of a zone's rows (a thousand at region scale) per group. A zone's row
-- is made before its first host's, and an import makes them again from the hosts.

CREATE TABLE IF NOT EXISTS placement_zones (
    zone TEXT PRIMARY KEY
);

INSERT INTO placement_zones (zone) SELECT DISTINCT zone FROM hosts WHERE 1 = 1 ON CONFLICT (zone) DO NOTHING;
