-- After a rotation the previous secret keeps working until its grace period ends.
ALTER TABLE api_keys ADD COLUMN previous_secret_hash TEXT;
