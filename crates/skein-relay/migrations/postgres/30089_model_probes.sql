-- Relay service: the last probe of each model of each channel (a one-token chat), run from
-- the admin console or on relay.model_probe_interval_secs. ok is 0/1 (the database layer
-- reads no booleans on SQLite).
CREATE TABLE relay_model_probes (
    channel_id  TEXT NOT NULL,
    model       TEXT NOT NULL,
    ok          BIGINT NOT NULL,
    latency_ms  BIGINT NOT NULL,
    message     TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (channel_id, model)
);
