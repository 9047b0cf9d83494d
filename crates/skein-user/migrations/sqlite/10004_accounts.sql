-- Accounts, complete: verified addresses, one-time links, the mail queue, two-factor sign-in.
-- Times are milliseconds since the Unix epoch (UTC).

-- When the account's current email was proved to be theirs; NULL while unverified.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
-- The uploaded avatar (a 256 px PNG stored through the File service), if any.
ALTER TABLE users ADD COLUMN avatar_file_id TEXT;

-- One-time links sent by mail (verify an address, reset a password), stored as SHA-256
-- hashes. A link works once (used_at) and until expires_at; for an address change, email is
-- the new address, which becomes the account's only when the link is opened.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX account_tokens_user_id ON account_tokens (user_id, purpose);

-- Mail waiting to go out. Requests only insert here; a background task sends, retries with
-- backoff (next_attempt_at) and gives up after mail.max_attempts. Bodies are cleared once sent.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- TOTP (RFC 6238). secret is base32; enabled_at is NULL while set-up waits for its first
-- code; last_step refuses a code used once from being used again.
CREATE TABLE user_totp (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    secret     TEXT NOT NULL,
    enabled_at INTEGER,
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

-- Recovery codes, SHA-256 hashed; each works once.
CREATE TABLE totp_recovery_codes (
    code_hash TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id),
    used_at   INTEGER
);
CREATE INDEX totp_recovery_codes_user_id ON totp_recovery_codes (user_id);

-- The step between a right password and the second factor: a short-lived challenge, hashed.
CREATE TABLE login_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    user_agent TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    used_at    INTEGER
);
