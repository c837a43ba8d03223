CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
