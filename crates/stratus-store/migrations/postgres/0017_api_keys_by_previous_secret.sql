CREATE INDEX api_keys_by_previous_secret ON api_keys (previous_secret_hash);
