-- Relay service: API keys. Only a SHA-256 hash of each secret is stored.

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL,
    key_hint       TEXT NOT NULL,
    status         TEXT NOT NULL,
    expires_at     BIGINT,
    quota_limit    BIGINT,
    allowed_models TEXT,
    allowed_ips    TEXT,
    group_name     TEXT NOT NULL,
    rpm_limit      BIGINT,
    tpm_limit      BIGINT,
    last_used_at   BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
