CREATE INDEX projects_by_organization ON projects (organization_id, id);
