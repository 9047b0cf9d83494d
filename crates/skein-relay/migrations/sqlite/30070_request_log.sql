-- Relay service: the admin request log. One row per relayed request that reached a hold
-- (answered, failed on every channel, or refused), and one row per upstream attempt, so
-- per-channel statistics count what each channel did. Never a prompt, an answer or a key.
-- Rows older than relay.request_log_retention_days are pruned by a background task.

CREATE TABLE relay_requests (
    id                TEXT PRIMARY KEY,
    request_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    key_id            TEXT,
    model             TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    channel_id        TEXT,
    status            TEXT NOT NULL,
    detail            TEXT,
    http_status       INTEGER NOT NULL,
    cost              INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    ttfb_ms           INTEGER,
    routing           TEXT NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX relay_requests_time ON relay_requests (created_at);
CREATE INDEX relay_requests_user ON relay_requests (user_id, id);

CREATE TABLE relay_request_attempts (
    request_id     TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    channel_id     TEXT NOT NULL,
    channel_name   TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    http_status    INTEGER,
    error          TEXT,
    latency_ms     INTEGER NOT NULL,
    ttfb_ms        INTEGER,
    latency_bucket INTEGER NOT NULL,
    cost           INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX relay_request_attempts_channel ON relay_request_attempts (channel_id, created_at);
CREATE INDEX relay_request_attempts_time ON relay_request_attempts (created_at);
