-- Relay service: API keys. Only a SHA-256 hash of each secret is stored.

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL,
    key_hint       TEXT NOT NULL,
    status         TEXT NOT NULL,
    expires_at     INTEGER,
    quota_limit    INTEGER,
    allowed_models TEXT,
    allowed_ips    TEXT,
    group_name     TEXT NOT NULL,
    rpm_limit      INTEGER,
    tpm_limit      INTEGER,
    last_used_at   INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deleted_at     INTEGER
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
