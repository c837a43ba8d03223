CREATE INDEX instances_by_host ON instances (host_id);
