ALTER TABLE api_keys ADD COLUMN last_rotated_at BIGINT;
