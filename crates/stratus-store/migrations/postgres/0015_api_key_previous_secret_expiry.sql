ALTER TABLE api_keys ADD COLUMN previous_secret_expires_at BIGINT;
