-- Billing service: balances, the immutable ledger, reservations, usage, redemption codes.
-- Money is integer quota units; times are milliseconds since the Unix epoch (UTC).

-- One row per user. Invariants: balance = SUM(ledger_entries.amount);
-- reserved = SUM(open reservations); used = -SUM(consume entries).
CREATE TABLE billing_accounts (
    user_id    TEXT PRIMARY KEY,
    balance    INTEGER NOT NULL,
    reserved   INTEGER NOT NULL DEFAULT 0,
    used       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every change of a balance. Rows are only ever inserted.
CREATE TABLE ledger_entries (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    amount          INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL,
    reference       TEXT,
    actor_id        TEXT,
    memo            TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX ledger_entries_user ON ledger_entries (user_id, id);
CREATE UNIQUE INDEX ledger_entries_idempotency ON ledger_entries (idempotency_key);

CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    key_id         TEXT,
    amount         INTEGER NOT NULL,
    status         TEXT NOT NULL,
    reference      TEXT,
    settled_amount INTEGER,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    closed_at      INTEGER
);
CREATE INDEX reservations_open ON reservations (status, expires_at);

-- What each API key has spent and holds, against the limit its owner set in the Relay.
CREATE TABLE key_quotas (
    key_id     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    reserved   INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- One row per billable request.
CREATE TABLE usage_records (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    key_id            TEXT,
    reservation_id    TEXT NOT NULL,
    model             TEXT NOT NULL,
    channel_id        TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost              INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    ttft_ms           INTEGER,
    stream            INTEGER NOT NULL,
    status            TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    conversation_id   TEXT,
    -- The prices the cost was computed with (JSON), so a later price change explains nothing away.
    pricing           TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX usage_records_user_time ON usage_records (user_id, created_at);
CREATE INDEX usage_records_time ON usage_records (created_at);

CREATE TABLE redemption_codes (
    id          TEXT PRIMARY KEY,
    code        TEXT NOT NULL,
    batch_name  TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    status      TEXT NOT NULL,
    expires_at  INTEGER,
    redeemed_by TEXT,
    redeemed_at INTEGER,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX redemption_codes_code ON redemption_codes (code);
CREATE INDEX redemption_codes_batch ON redemption_codes (batch_name, created_at);
