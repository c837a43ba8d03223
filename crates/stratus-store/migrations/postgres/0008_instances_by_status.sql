CREATE INDEX instances_by_status ON instances (status, status_changed_at);
