-- API keys can be disabled (status active|disabled).
ALTER TABLE api_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
