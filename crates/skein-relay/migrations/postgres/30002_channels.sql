-- Relay service: channels (upstream accounts) and the pricing table.
-- Upstream keys and extra headers are stored encrypted (AES-256-GCM) in `secrets`.

CREATE TABLE channels (
    id                   TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL,
    name                 TEXT NOT NULL,
    base_url             TEXT NOT NULL,
    secrets              TEXT NOT NULL,
    key_count            BIGINT NOT NULL,
    models               TEXT NOT NULL,
    model_mapping        TEXT NOT NULL,
    groups_list          TEXT NOT NULL,
    priority             BIGINT NOT NULL,
    weight               BIGINT NOT NULL,
    timeout_secs         BIGINT NOT NULL,
    header_names         TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    last_test_at         BIGINT,
    last_test_latency_ms BIGINT,
    last_test_result     TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX channels_status ON channels (status, priority);

-- Prices in quota units per million tokens (or per call). One row per model.
CREATE TABLE model_prices (
    model                 TEXT PRIMARY KEY,
    input_per_mtok        BIGINT NOT NULL,
    output_per_mtok       BIGINT NOT NULL,
    cache_read_per_mtok   BIGINT NOT NULL,
    cache_write_per_mtok  BIGINT NOT NULL,
    per_call              BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
