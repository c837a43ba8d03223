-- Each zone's row carries a version that everything changing what placement reads of the
-- zone's hosts bumps (a group placing there, a deletion, a host registering, a cordon, a
-- removal, an import), so the writer keeps the zone's hosts from one group to the next while
-- nobody else changed them (crate::zones). The bump of a group placing in the zone is also
-- the lock its placements queue on.

ALTER TABLE placement_zones {add_column} version BIGINT NOT NULL DEFAULT 0;
