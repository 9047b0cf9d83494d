-- Sign-in by SMS code. Times are milliseconds since the Unix epoch (UTC).

-- The account's phone number in E.164 (`+8613800138000`), set only once a code sent to it
-- was typed back, so a stored number is always a verified one. One number, one account.
ALTER TABLE users ADD COLUMN phone TEXT;
CREATE UNIQUE INDEX users_phone ON users (phone);

-- Codes sent by SMS, as HMAC-SHA256 digests under a key derived from the deployment's secret
-- (a 6-digit code hashed without a key would be found from a database copy in a moment).
-- purpose is `sign_in` (anyone) or `bind` (user_id, the signed-in account binding the number).
-- A code works once (used_at), until expires_at, for at most attempts_left wrong tries; a new
-- code for the same number and purpose voids the older ones.
CREATE TABLE phone_codes (
    id            TEXT PRIMARY KEY,
    phone         TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    user_id       TEXT,
    code_hash     TEXT NOT NULL,
    attempts_left INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);
CREATE INDEX phone_codes_phone ON phone_codes (phone, purpose, created_at);
CREATE INDEX phone_codes_expires_at ON phone_codes (expires_at);
