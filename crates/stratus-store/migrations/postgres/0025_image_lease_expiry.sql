ALTER TABLE images ADD COLUMN lease_expires_at BIGINT;
