-- User service: accounts, sessions with rotating refresh tokens, invite codes.
-- Times are milliseconds since the Unix epoch (UTC); flags are 0/1 integers.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT,
    -- The username lower-cased by Skein (Unicode-aware, unlike SQLite's lower()).
    username_key        TEXT,
    email               TEXT,
    password_hash       TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    avatar_url          TEXT,
    language            TEXT NOT NULL DEFAULT 'en',
    theme               TEXT NOT NULL DEFAULT 'system',
    role                TEXT NOT NULL DEFAULT 'user',
    status              TEXT NOT NULL DEFAULT 'active',
    invited_by          TEXT REFERENCES users (id),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_login_at       INTEGER,
    password_changed_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at ON users (created_at);

-- One-time facts, such as "the root account has been claimed".
CREATE TABLE user_flags (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- A session is one sign-in: a family of refresh tokens.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    user_agent    TEXT,
    ip            TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Refresh tokens are stored as SHA-256 hashes; used_at is set when one is rotated away.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE invite_codes (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    by_admin   INTEGER NOT NULL DEFAULT 0,
    max_uses   INTEGER NOT NULL,
    used_count INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    disabled   INTEGER NOT NULL DEFAULT 0,
    note       TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX invite_codes_code_key ON invite_codes (code);
CREATE INDEX invite_codes_owner_id ON invite_codes (owner_id);

-- Who invited whom, for invite rewards (paid out by Billing).
CREATE TABLE invitations (
    invitee_id TEXT PRIMARY KEY REFERENCES users (id),
    inviter_id TEXT NOT NULL REFERENCES users (id),
    code_id    TEXT NOT NULL REFERENCES invite_codes (id),
    created_at INTEGER NOT NULL
);
CREATE INDEX invitations_inviter_id ON invitations (inviter_id);
