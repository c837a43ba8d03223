-- Revoked access tokens, remembered by jti until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
