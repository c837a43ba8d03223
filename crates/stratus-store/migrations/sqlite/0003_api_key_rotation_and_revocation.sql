-- API keys can be disabled and rotated with a grace period for the previous secret; revoked
-- access tokens are remembered by their `jti` until they would have expired anyway.
ALTER TABLE api_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE api_keys ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE api_keys ADD COLUMN previous_secret_expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_rotated_at INTEGER;
CREATE INDEX api_keys_by_previous_secret ON api_keys (previous_secret_hash);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
